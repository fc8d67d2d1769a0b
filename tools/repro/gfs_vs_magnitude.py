#!/usr/bin/python3
"""Greedy forward selection (Ye et al. 2020) against magnitude-based neuron pruning on lenet300 /
Fashion-MNIST (issue 6): both start from the same trained network (same seed), select the hidden
units of each layer until the accuracy on 5,000 training images reaches (1 - tolerance) of the
trained network's, fine-tune briefly per layer, then fully (one restarted cosine cycle). Prints and
writes the neurons kept per layer and the accuracies.

usage: tools/repro/gfs_vs_magnitude.py [--binary build/sparsetrain] [--tolerances 0.01,0.02,0.05]
                                       [--epochs 5] [--out bench/results/<date>-gfs-lenet300.md]"""
import argparse
import datetime
import json
import os
import subprocess
import sys


def read_run(run_dir):
    selection, end = None, None
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            event = json.loads(line)
            if event["event"] == "select_units":
                selection = event
            if event["event"] == "end":
                end = event
    return selection, end


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="build/sparsetrain")
    parser.add_argument("--tolerances", default="0.01,0.02,0.05")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--select-batches", type=int, default=1, help="gfs: minibatches averaged per candidate")
    parser.add_argument("--runs", default="runs/gfs-vs-magnitude")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    rows = []
    for tolerance in [float(t) for t in args.tolerances.split(",")]:
        for method in ["gfs", "magnitude"]:
            run_dir = os.path.join(args.runs, f"{method}-tol{tolerance}")
            command = [args.binary, "train", "--model", "lenet300", "--epochs", str(args.epochs), "--cycles", "2",
                       "--cycle-policy", "restart", "--select", method, "--select-tolerance", str(tolerance),
                       "--select-batches", str(args.select_batches), "--run-dir", run_dir, "--overwrite"]
            print(" ".join(command), flush=True)
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            selection, end = read_run(run_dir)
            layers = selection["layers"]
            rows.append((tolerance, method, [l["selected"] for l in layers], sum(l["selected"] for l in layers),
                         layers[-1]["accuracy_selected"], selection["target_accuracy"], end["test_accuracy"],
                         selection["parameters"]))
    lines = ["| tolerance | method | neurons per hidden layer (of 300, 100) | total | train-subset acc at selection | "
             "target | test acc after fine-tuning | parameters |",
             "|---:|---|---|---:|---:|---:|---:|---:|"]
    for tol, method, per_layer, total, acc, target, test, params in rows:
        lines.append(f"| {tol} | {method} | {', '.join(str(n) for n in per_layer)} | {total} | {acc:.4f} | "
                     f"{target:.4f} | {test:.4f} | {params:,} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write("# Greedy forward selection vs magnitude neuron pruning, lenet300 / Fashion-MNIST\n\n")
            f.write(f"{datetime.date.today()}, CPU (2 cores). Command:\n\n```\n/usr/bin/python3 {' '.join(sys.argv)}\n```\n\n")
            f.write(f"Dense training {args.epochs} epochs (seed 0, the same network for every row), then each hidden "
                    "layer in turn: units selected until the accuracy on the first 5,000 training images reaches "
                    "(1 - tolerance) of the trained network's; GFS samples 50 candidates per step, scores each by its loss on the same fresh minibatch of 128, and rescales the "
                    "layer output as an average of the selected units; 100 SGD steps after each layer; then one "
                    f"restarted {args.epochs}-epoch cosine cycle of fine-tuning. 'train-subset acc at selection' is "
                    "measured when the last layer's selection stops.\n\n")
            f.write(table + "\n")


if __name__ == "__main__":
    main()
