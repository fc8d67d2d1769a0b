#!/usr/bin/python3
"""Structured pruning speedup of resnet20 on the CPU, sparsetrain vs PyTorch, side by side in one run.

What it measures: the training-step rate (forward, cross-entropy, backward, SGD momentum 0.9) of
resnet20 (1x32x32 Fashion-MNIST input, batch 128) at full width (16/32/64 channels) and with the
fraction F of every stage's channels removed (F = 0.5: 8/16/32), and the ratio shrunk / dense, for

  * sparsetrain: `sparsetrain bench --model resnet20 --density 1 --structured F --json`, which times the
    dense network, removes the channels (L1 filter norms, coupled groups) and times the shrunk one in
    the same process;
  * PyTorch: the twin network of torch_models.py built at both widths (parameter counts asserted equal
    to sparsetrain's), each timed in whichever memory format (contiguous or channels_last) is faster
    for it after a short trial.

Why this way: "faster in proportion to the FLOPs" has a ceiling set by the memory-bound passes
(BatchNorm, ReLU, residual joins), which shrink with the activations (by 1 - F) while the convolutions
shrink with channels squared. PyTorch running the same two networks on the same cores, interleaved
with sparsetrain, is the yardstick for how much of that ceiling an engine reaches. The machines are
shared and noisy: compare ratios within one run, not absolute rates across runs.

Usage (from the repository root):
  /usr/bin/python3 tools/bench/structured_vs_pytorch.py --binary build/sparsetrain --repeats 3 \
      --out bench/results/$(date +%F)-structured-vs-pytorch.md

Needs Debian's python3 with python3-torch and numpy (the same as cpu_vs_pytorch.py, whose data
loading it reuses). Exit status 0 on success, 1 when a run failed.
"""

import argparse
import datetime
import os
import shlex
import statistics
import sys
import time

CHILD_ENV = os.environ.copy()  # sparsetrain runs in the caller's environment, unchanged
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # PyTorch only; see cpu_vs_pytorch.py (libgomp spin-waiting)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True
import cpu_vs_pytorch as common  # noqa: E402  (after OMP_WAIT_POLICY, before torch loads)

WIDTHS = (16, 32, 64)
SHRUNK_PARAMS = {0.25: 153_550, 0.5: 68_642, 0.75: 17_462}  # sparsetrain's counts after removal


def shrunk_widths(fraction):
    return tuple(w - int(w * fraction) for w in WIDTHS)


def build_twin(widths, channels_last, seed):
    """resnet20 at these widths, in train mode, with its SGD optimizer."""
    torch = common.torch
    torch.manual_seed(seed)
    model = common.torch_models.CifarResNet(20, 1, 10, widths)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)


class Twin:
    """One PyTorch resnet20 at the given widths, in the faster memory format, warmed up."""

    def __init__(self, widths, expected_params, args, log):
        self.rates = {}
        for channels_last in (False, True):  # 3 untimed steps, then 5 timed, on a fresh model each
            self.model, self.opt = build_twin(widths, channels_last, args.seed)
            self.batches, self.cursor = common.make_batches(args.data, "resnet20", 8, channels_last), 0
            self._run(3)
            self.rates[common.layout_name(channels_last)] = self.timed(5)
        self.layout = max(self.rates, key=self.rates.get)
        self.model, self.opt = build_twin(widths, self.layout == "channels_last", args.seed)
        n = common.torch_models.count_params(self.model)
        assert n == expected_params, f"widths {widths}: {n:,} parameters, sparsetrain has {expected_params:,}"
        self.batches = common.make_batches(args.data, "resnet20", args.warmup + args.steps * args.repeats,
                                           self.layout == "channels_last")
        self.cursor = 0
        self._run(args.warmup)
        log(f"    pytorch widths {widths}: layout trial " +
            ", ".join(f"{k} {v:,.0f} img/s" for k, v in self.rates.items()) + f" -> {self.layout}")

    def _run(self, steps):
        t0 = time.perf_counter()
        for _ in range(steps):
            xb, yb = self.batches[self.cursor % len(self.batches)]
            self.cursor += 1
            self.opt.zero_grad(set_to_none=True)
            common.F.cross_entropy(self.model(xb), yb).backward()
            self.opt.step()
        return time.perf_counter() - t0

    def timed(self, steps):
        return steps * common.BATCH / self._run(steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default="build/sparsetrain")
    parser.add_argument("--fraction", type=float, default=0.5, choices=sorted(SHRUNK_PARAMS))
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=common.DEFAULT_DATA)
    parser.add_argument("--out", help="write the markdown report here (default: stdout only)")
    args = parser.parse_args()
    if args.steps < 1 or args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--steps, --repeats and --threads must be >= 1 and --warmup >= 0")

    def log(message):
        print(message, file=sys.stderr, flush=True)

    common.import_torch()
    torch = common.torch
    torch.set_num_threads(args.threads)
    dense_params = common.torch_models.EXPECTED_PARAMS[("resnet20", 1)]
    dense = Twin(WIDTHS, dense_params, args, log)
    shrunk = Twin(shrunk_widths(args.fraction), SHRUNK_PARAMS[args.fraction], args, log)
    cmd = [args.binary, "bench", "--model", "resnet20", "--batch", str(common.BATCH), "--density", "1",
           "--structured", str(args.fraction), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--threads", str(args.threads), "--device", "cpu", "--json"]
    rows = []
    failed = False
    for repeat in range(args.repeats):
        result, error = common.sparsetrain_bench(cmd, "resnet20", args.steps, 600, CHILD_ENV, log)
        if error is not None:
            log(f"  sparsetrain failed: {error}")
            failed = True
            break
        ours_dense, ours_shrunk = result["images_per_s"], result["structured"]["images_per_s"]
        if result["structured"]["parameters"] != SHRUNK_PARAMS[args.fraction]:
            log(f"  sparsetrain's shrunk network has {result['structured']['parameters']} parameters, "
                f"the PyTorch twin {SHRUNK_PARAMS[args.fraction]}")
            failed = True
        torch_dense, torch_shrunk = dense.timed(args.steps), shrunk.timed(args.steps)
        rows.append((ours_dense, ours_shrunk, torch_dense, torch_shrunk, result["flops_per_sample"],
                     result["structured"]["flops_per_sample"]))
        log(f"  run {repeat + 1}: sparsetrain {ours_dense:.1f} -> {ours_shrunk:.1f} img/s "
            f"({ours_shrunk / ours_dense:.2f}x), pytorch {torch_dense:.1f} -> {torch_shrunk:.1f} img/s "
            f"({torch_shrunk / torch_dense:.2f}x)")
    if not rows:
        return 1

    def cell(values, digits=1):
        return " / ".join(f"{v:.{digits}f}" for v in values)

    flop_ratio = rows[0][4] / rows[0][5]
    ours = [r[1] / r[0] for r in rows]
    theirs = [r[3] / r[2] for r in rows]
    lines = [
        f"# resnet20 structured pruning (F = {args.fraction}): CPU step speedup, sparsetrain vs PyTorch",
        "",
        f"{datetime.date.today()}, {common.cpu_model()}, {args.threads} threads, torch {torch.__version__} "
        f"(mkldnn {'on' if torch.backends.mkldnn.is_available() else 'off'}), batch {common.BATCH}, "
        f"{args.warmup} warmup + {args.steps} timed steps per measurement, {len(rows)} interleaved runs.",
        "",
        "```",
        " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv),
        "```",
        "",
        f"Channels per stage {WIDTHS} -> {shrunk_widths(args.fraction)}; parameters {dense_params:,} -> "
        f"{SHRUNK_PARAMS[args.fraction]:,}; FLOPs {flop_ratio:.2f}x fewer. PyTorch layouts: dense "
        f"{dense.layout}, shrunk {shrunk.layout}.",
        "",
        "| engine | dense images/s | shrunk images/s | speedup, each run | median speedup | of the FLOP ratio |",
        "|---|---:|---:|---:|---:|---:|",
        f"| sparsetrain | {cell([r[0] for r in rows])} | {cell([r[1] for r in rows])} | {cell(ours, 2)}x | "
        f"{statistics.median(ours):.2f}x | {statistics.median(ours) / flop_ratio:.0%} |",
        f"| PyTorch | {cell([r[2] for r in rows])} | {cell([r[3] for r in rows])} | {cell(theirs, 2)}x | "
        f"{statistics.median(theirs):.2f}x | {statistics.median(theirs) / flop_ratio:.0%} |",
        "",
        f"sparsetrain / PyTorch images/s: dense {statistics.median([r[0] / r[2] for r in rows]):.2f}x, "
        f"shrunk {statistics.median([r[1] / r[3] for r in rows]):.2f}x (medians).",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
