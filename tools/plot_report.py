#!/usr/bin/python3
"""Plots a run's per-cycle distributions (the "distributions" events of RUN_DIR/metrics.jsonl, see
engine/trainer_report.cpp) into RUN_DIR/report-distributions.png: the weight-gradient histogram of
each cycle (log scale), the gradient standard deviation and the activation zero fraction against
the cycle's density, and the non-zero activation histograms.
usage: tools/plot_report.py RUN_DIR"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_events(run_dir):
    by_cycle = {}
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            event = json.loads(line)
            if event.get("event") == "distributions":
                by_cycle[event["cycle"]] = event  # the last event of a cycle wins (resumed runs)
    return [by_cycle[c] for c in sorted(by_cycle)]


def draw_histogram(ax, histogram, label):
    counts, low, high = histogram["counts"], histogram["low"], histogram["high"]
    if not counts:
        return
    width = (high - low) / len(counts) if high > low else 1.0
    total = float(sum(counts))
    centres = [low + (i + 0.5) * width for i in range(len(counts))]
    ax.step(centres, [c / total for c in counts], where="mid", label=label)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    run_dir = sys.argv[1]
    events = read_events(run_dir)
    if not events:
        sys.exit(f"plot_report: {run_dir}/metrics.jsonl has no distributions events")
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for e in events:
        label = f"cycle {e['cycle']} (density {e['density']:.3f})"
        draw_histogram(axes[0][0], e["gradient"]["histogram"], label)
        draw_histogram(axes[1][0], e["activation"]["nonzero_histogram"], label)
    axes[0][0].set_yscale("log")
    axes[0][0].set_title("weight gradients of surviving weights (fraction per Sturges bin)")
    axes[0][0].legend(fontsize=7)
    axes[1][0].set_yscale("log")
    axes[1][0].set_title("non-zero activations (fraction per Sturges bin)")
    densities = [e["density"] for e in events]
    axes[0][1].plot(densities, [e["gradient"]["std"] for e in events], "o-")
    axes[0][1].set_xscale("log")
    axes[0][1].invert_xaxis()
    axes[0][1].set_xlabel("density")
    axes[0][1].set_title("weight-gradient standard deviation")
    axes[1][1].plot(densities, [e["activation"]["zero_fraction"] for e in events], "o-")
    axes[1][1].set_xscale("log")
    axes[1][1].invert_xaxis()
    axes[1][1].set_xlabel("density")
    axes[1][1].set_title("fraction of zero activations")
    fig.suptitle(run_dir)
    fig.tight_layout()
    out = os.path.join(run_dir, "report-distributions.png")
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
