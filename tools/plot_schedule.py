#!/usr/bin/python3
"""Draws a sparsetrain schedule: lr over all iterations of all cycles (top) and each cycle's
max_lr (bottom), so SILO's S-shaped growth and its phases are visible.
usage: plot_schedule.py SCHEDULE.csv OUT.png MAX_LRS TITLE PHASES   (called by `sparsetrain schedule --png`)"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    data_path, png_path, max_lrs_text, title, phases_text = sys.argv[1:6]
    cycles, iters, lrs = [], [], []
    with open(data_path) as f:
        for row in csv.DictReader(f):
            cycles.append(int(row["cycle"]))
            iters.append(int(row["iter"]))
            lrs.append(float(row["lr"]))
    # global iteration = iterations of earlier cycles + iteration inside the cycle
    offsets, total, last_cycle, last_iter = {}, 0, -1, 0
    for c, t in zip(cycles, iters):
        if c != last_cycle:
            if last_cycle >= 0:
                total += last_iter + 1
            offsets[c] = total
            last_cycle = c
        last_iter = t
    x = [offsets[c] + t for c, t in zip(cycles, iters)]
    max_lrs = [float(v) for v in max_lrs_text.split(",")]

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), gridspec_kw={"height_ratios": [3, 2]})
    top.plot(x, lrs, linewidth=0.8, color="tab:blue")
    for c, start in offsets.items():
        top.axvline(start, color="0.85", linewidth=0.6, zorder=0)
    top.set_xlabel("iteration (all cycles)")
    top.set_ylabel("learning rate")
    top.set_title(title)
    phases = phases_text.split(",")
    bottom.plot(range(len(max_lrs)), max_lrs, color="0.6", zorder=1)
    colors = {"no growth": "tab:gray", "slow": "tab:blue", "fast": "tab:orange", "saturation": "tab:red", "-": "tab:red"}
    for name, color in colors.items():
        ks = [k for k, p in enumerate(phases) if p == name]
        if ks:
            label = None if name == "-" else "SILO phase: " + name
            bottom.scatter(ks, [max_lrs[k] for k in ks], color=color, zorder=2, label=label)
    if any(p != "-" for p in phases):
        bottom.legend(loc="lower right", fontsize=8)
    bottom.set_xlabel("pruning cycle k (density 0.8^k for p = 0.2)")
    bottom.set_ylabel("max_lr(k)")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)


if __name__ == "__main__":
    main()
