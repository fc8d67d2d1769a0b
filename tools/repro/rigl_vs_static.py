#!/usr/bin/python3
"""RigL against a static random mask at the same sparsity (issue 6): lenet300 on Fashion-MNIST,
ERK initial allocation, 90% sparsity, the same epochs and the same seeds for both; prints and
writes a markdown table of final test accuracy. Uses only the sparsetrain binary.

usage: tools/repro/rigl_vs_static.py [--binary build/sparsetrain] [--seeds 0,1,2] [--epochs 20]
                                     [--density 0.1] [--out bench/results/<date>-rigl-lenet300.md]"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys


def final_accuracy(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            event = json.loads(line)
            if event["event"] == "end":
                return event["test_accuracy"], event["val_accuracy"]
    raise RuntimeError(f"{run_dir}: no end event")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="build/sparsetrain")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--runs", default="runs/rigl-vs-static")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = {
        "static random (ERK)": ["--prune-at-init", "random"],
        "SET": ["--dst", "set"],
        "RigL": ["--dst", "rigl"],
    }
    results = {name: [] for name in methods}
    for seed in seeds:
        for name, flags in methods.items():
            run_dir = os.path.join(args.runs, f"{name.split()[0].lower()}-seed{seed}")
            command = [args.binary, "train", "--model", "lenet300", "--epochs", str(args.epochs), "--seed", str(seed),
                       "--init-density", str(args.density), "--prune-allocation", "erk", "--run-dir", run_dir,
                       "--overwrite"] + flags
            print(" ".join(command), flush=True)
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            test, val = final_accuracy(run_dir)
            results[name].append(test)
            print(f"  {name}, seed {seed}: test accuracy {test:.4f} (validation {val:.4f})", flush=True)
    lines = [f"| method | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
             "|---|" + "---:|" * (len(seeds) + 1)]
    for name, accs in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{a:.4f}" for a in accs) + f" | {statistics.mean(accs):.4f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(f"# RigL vs static random mask, lenet300 / Fashion-MNIST, {100 * (1 - args.density):.0f}% sparsity\n\n")
            f.write(f"{datetime.date.today()}, CPU (2 cores). Command:\n\n```\n/usr/bin/python3 {' '.join(sys.argv)}\n```\n\n")
            f.write(f"{args.epochs} epochs, SGD momentum 0.9, weight decay 5e-4, cosine lr 0.05, batch 128; ERK initial "
                    f"allocation at density {args.density}; DST every 100 steps until 75% of training, drop fraction "
                    "0.3 with cosine decay. Final test accuracy (10,000 images):\n\n")
            f.write(table + "\n")


if __name__ == "__main__":
    main()
