#!/usr/bin/python3
"""Plots seconds per cycle against density from the summary.csv of IMP runs (issue 17: with the sparse
kernels, a cycle gets cheaper as the network gets sparser), one line per run, and prints the table.

usage: tools/bench/plot_cycle_seconds.py OUT.png LABEL=RUN_DIR [LABEL=RUN_DIR ...]
"""
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_summary(run_dir):
    path = os.path.join(run_dir, "summary.csv")
    with open(path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"plot_cycle_seconds.py: {path} has no rows")
    return [(int(r["cycle"]), float(r["density"]), float(r["seconds"]), float(r["test_accuracy"])) for r in rows]


def main(argv):
    if len(argv) < 3 or any("=" not in a for a in argv[2:]):
        raise SystemExit(__doc__)
    out, runs = argv[1], [a.split("=", 1) for a in argv[2:]]
    data = {label: read_summary(run_dir) for label, run_dir in runs}
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, rows in data.items():
        ax.plot([r[1] for r in rows], [r[2] for r in rows], marker="o", markersize=3, label=label)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("density (log scale; pruning goes right)")
    ax.set_ylabel("seconds per cycle")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    labels = list(data)
    print("| cycle | density | " + " | ".join(f"{label} s" for label in labels) + " | " +
          " | ".join(f"{label} test acc" for label in labels) + " |")
    print("|---:|---:|" + "---:|" * (2 * len(labels)))
    for i, first in enumerate(data[labels[0]]):
        seconds = [f"{data[label][i][2]:.1f}" if i < len(data[label]) else "-" for label in labels]
        accuracy = [f"{data[label][i][3]:.4f}" if i < len(data[label]) else "-" for label in labels]
        print(f"| {first[0]} | {first[1]:.4f} | " + " | ".join(seconds) + " | " + " | ".join(accuracy) + " |")
    totals = [sum(r[2] for r in data[label]) for label in labels]
    print("| all | | " + " | ".join(f"{t:.1f}" for t in totals) + " | " + " | ".join("" for _ in labels) + " |")


if __name__ == "__main__":
    main(sys.argv)
