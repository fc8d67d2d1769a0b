#!/usr/bin/python3
"""Greedy forward selection (Ye et al. 2020) against magnitude-based neuron pruning on lenet300 /
Fashion-MNIST (issue 6). For every seed both methods start from the same trained network (same seed,
same dense training), select the hidden units of each layer until the accuracy on 5,000 training
images reaches (1 - tolerance) of the reference (--target layer: the accuracy just before that
layer's selection, as Ye et al.'s released code; original: the trained network's), fine-tune briefly
per layer, then fully (one restarted cosine cycle). Runs two trainings at a time on one thread each
(results depend on the thread count, not on the machine's load). Prints and writes the neurons kept
per layer and the accuracies, per seed and averaged.

usage: tools/repro/gfs_vs_magnitude.py [--binary build/sparsetrain] [--tolerances 0.01,0.02,0.05]
                                       [--seeds 0,1,2,3,4] [--target layer|original] [--epochs 5]
                                       [--scale average|sum] [--methods gfs,magnitude]
                                       [--out bench/results/<date>-gfs-lenet300.md]"""
import argparse
import concurrent.futures
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


def run_one(args, tolerance, method, seed):
    variant = ("-repeats" if args.repeats else "") + ("-sum" if args.scale == "sum" else "") if method == "gfs" else ""
    run_dir = os.path.join(args.runs, f"{args.target}-{method}{variant}-tol{tolerance}-seed{seed}")
    command = [args.binary, "train", "--model", "lenet300", "--epochs", str(args.epochs), "--cycles", "2",
               "--cycle-policy", "restart", "--select", method, "--select-tolerance", str(tolerance),
               "--select-target", args.target, "--select-batches", str(args.select_batches), "--seed", str(seed),
               "--threads", "1", "--run-dir", run_dir, "--overwrite"] + (["--select-repeats"] if args.repeats and method == "gfs" else []) + \
              (["--select-scale", args.scale] if method == "gfs" else [])
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    selection, end = read_run(run_dir)
    layers = selection["layers"]
    return {"tolerance": tolerance, "method": method, "seed": seed, "per_layer": [l["selected"] for l in layers],
            "total": sum(l["selected"] for l in layers),
            # the selection's end: the last layer's accuracy against its own target
            "accuracy": layers[-1]["accuracy_selected"], "target": layers[-1]["target_accuracy"],
            "original": selection["original_accuracy"], "test": end["test_accuracy"],
            "parameters": selection["parameters"]}


def mean(values):
    return sum(values) / len(values)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="build/sparsetrain")
    parser.add_argument("--tolerances", default="0.01,0.02,0.05")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--target", default="layer", choices=["layer", "original"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--select-batches", type=int, default=1, help="gfs: minibatches averaged per candidate")
    parser.add_argument("--repeats", action="store_true", help="gfs: --select-repeats (S a multiset)")
    parser.add_argument("--scale", default="average", choices=["average", "sum"],
                        help="gfs: --select-scale (average: N / |S|, Ye et al.; sum: selected units as trained)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--runs", default="runs/gfs-vs-magnitude")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    tolerances = [float(t) for t in args.tolerances.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [(t, m, s) for t in tolerances for s in seeds for m in ["gfs", "magnitude"]]
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda job: run_one(args, *job), jobs))
    by_key = {(r["tolerance"], r["method"], r["seed"]): r for r in results}

    lines = ["| tolerance | method | neurons per hidden layer (of 300, 100), mean | total, mean | totals per seed | "
             "GFS fewer (seeds) | train-subset acc at selection | test acc after fine-tuning | parameters, mean |",
             "|---:|---|---|---:|---|---:|---:|---:|---:|"]
    for t in tolerances:
        wins = sum(by_key[(t, "gfs", s)]["total"] < by_key[(t, "magnitude", s)]["total"] for s in seeds)
        ties = sum(by_key[(t, "gfs", s)]["total"] == by_key[(t, "magnitude", s)]["total"] for s in seeds)
        for m in ["gfs", "magnitude"]:
            rows = [by_key[(t, m, s)] for s in seeds]
            per_layer = [mean([r["per_layer"][i] for r in rows]) for i in range(len(rows[0]["per_layer"]))]
            lines.append(
                f"| {t} | {m} | {', '.join(f'{n:.1f}' for n in per_layer)} | {mean([r['total'] for r in rows]):.1f} | "
                f"{', '.join(str(r['total']) for r in rows)} | "
                f"{f'{wins} of {len(seeds)} ({ties} ties)' if m == 'gfs' else ''} | "
                f"{mean([r['accuracy'] for r in rows]):.4f} | {mean([r['test'] for r in rows]):.4f} | "
                f"{mean([r['parameters'] for r in rows]):,.0f} |")
    table = "\n".join(lines)
    detail = ["| tolerance | seed | method | neurons per layer | trained acc | last layer's target | acc at selection | "
              "test acc after fine-tuning |", "|---:|---:|---|---|---:|---:|---:|---:|"]
    for t in tolerances:
        for s in seeds:
            for m in ["gfs", "magnitude"]:
                r = by_key[(t, m, s)]
                detail.append(f"| {t} | {s} | {m} | {', '.join(str(n) for n in r['per_layer'])} | {r['original']:.4f} | "
                              f"{r['target']:.4f} | {r['accuracy']:.4f} | {r['test']:.4f} |")
    print(table)
    print("\n".join(detail))
    if args.out:
        with open(args.out, "w") as f:
            f.write(f"## Seeds {args.seeds}, --select-target {args.target}{', GFS with --select-repeats' if args.repeats else ''}{', GFS --select-scale ' + args.scale}\n\n")
            f.write(f"{datetime.date.today()}, CPU (2 cores, two runs at a time on one thread each). Command:\n\n"
                    f"```\n/usr/bin/python3 {' '.join(sys.argv)}\n```\n\n")
            f.write(table + "\n\nPer seed:\n\n" + "\n".join(detail) + "\n")


if __name__ == "__main__":
    main()
