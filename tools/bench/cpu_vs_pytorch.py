#!/usr/bin/python3
"""CPU training throughput, sparsetrain vs PyTorch, side by side in one run.

What it measures: images/s of the training-step loop (forward, cross-entropy loss, backward,
SGD momentum step, re-applying 50% weight masks) for lenet300, lenet5 and resnet20
(1x32x32) at batch 128 on Fashion-MNIST, once with `sparsetrain bench ... --json` (a child
process) and once with an identical PyTorch twin (torch_models.py) in this process, using the
same thread count.

Why this way: the machines are shared and noisy, so absolute images/s are not comparable
between runs or machines. Both engines run back to back on the same machine in the same run;
the ratio ours/pytorch is the figure to compare across runs, not the absolute numbers.

PyTorch side (the twin of what sparsetrain times):
  * torch.set_num_threads(T); model.train(); SGD(lr=0.05, momentum=0.9, weight_decay=5e-4).
  * A fixed random mask keeping exactly 50% of every conv/linear weight (not biases, not BN),
    applied once at the start and, under torch.no_grad(), after every optimizer.step() to the
    weight and to its momentum buffer.
  * Data: the real Fashion-MNIST training set read with gzip + numpy, normalized with mean
    0.2860 / std 0.3530 (resnet20: then zero-padded 28 -> 32, centered), preloaded as tensors
    and walked in consecutive batches of 128, so data loading is not timed.
  * Conv models: contiguous (NCHW) and channels_last are both tried for a few steps and the
    faster one is timed (reported in the "torch layout" column); --layout forces one.
  * W warmup steps untimed, then S steps timed with time.perf_counter().
  * OMP_WAIT_POLICY=PASSIVE is set for this process before torch is imported, unless the
    environment already sets it (--omp-wait-policy inherit leaves it unset). Measured on a
    2-core shared VM, libgomp's default spin-waiting made PyTorch's 2-thread step loop
    1.5-10x slower and erratic (lenet300: 9k-60k img/s active vs a steady 72k-86k passive);
    the baseline should be PyTorch at its reasonable best. The sparsetrain child gets the
    caller's environment unchanged.

Per model: the PyTorch twin is built (param count asserted), layout picked and warmed up;
then sparsetrain runs, then the PyTorch steps are timed; with --repeats N that pair is
repeated N times (interleaved) and the table shows the median of each engine.

Usage (from the repository root):
  /usr/bin/python3 tools/bench/cpu_vs_pytorch.py --binary build/sparsetrain \
      --out bench/results/$(date +%F)-cpu.md
  add --repeats 3 on a busy machine; --models resnet20 --steps 10 for a quick look.

Needs only Debian's python3 with python3-torch and numpy; it does not import sparsetrain.
Exit status: 0 when every row succeeded on both sides, 1 otherwise, 2 on bad arguments.
"""

import argparse
import datetime
import gzip
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback

import numpy as np

# torch (and torch_models, which imports it) is imported in main(), after OMP_WAIT_POLICY is
# settled: libgomp reads it once, when torch loads it.
torch = F = torch_models = None


def import_torch():
    global torch, F, torch_models
    import torch as _torch
    import torch.nn.functional as _F
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
    import torch_models as _tm  # lives next to this file
    torch, F, torch_models = _torch, _F, _tm


MODELS = ("lenet300", "lenet5", "resnet20")
CONV_MODELS = ("lenet5", "resnet20")
DEFAULT_STEPS = {"lenet300": 200, "lenet5": 200, "resnet20": 30}
BATCH = 128
DENSITY = 0.5
LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 5e-4
MEAN, STD = 0.2860, 0.3530
DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"


# --------------------------------------------------------------------------- machine info

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info():
    n = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = n
    return {
        "host": platform.node(),
        "nproc": n,
        "usable_cpus": usable,
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "mkldnn": torch.backends.mkldnn.is_available(),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------------- data

def read_idx(path):
    """Reads a gzipped IDX file (the MNIST format) into a numpy array."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte data
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {dims} bytes of data, found {data.size}")
    return data.reshape(dims)


_DATA_CACHE = {}


def fashion_mnist(data_dir):
    """(images float32 N x 1 x 28 x 28 normalized, labels int64 N) as torch tensors."""
    if data_dir not in _DATA_CACHE:
        images = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))
        labels = read_idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"))
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{data_dir}: {images.shape[0]} images but {labels.shape[0]} labels")
        x = (images.astype(np.float32) / 255.0 - MEAN) / STD
        x = torch.from_numpy(np.ascontiguousarray(x[:, None, :, :]))
        y = torch.from_numpy(labels.astype(np.int64))
        _DATA_CACHE[data_dir] = (x, y)
    return _DATA_CACHE[data_dir]


def make_batches(data_dir, model_name, n_batches, channels_last):
    """The first n_batches consecutive batches of 128 (wrapping around the data set),
    already in the model's input shape and memory format."""
    x, y = fashion_mnist(data_dir)
    c, h, w = torch_models.INPUT_SHAPE[model_name]
    if (h, w) != tuple(x.shape[2:]):
        ph, pw = h - x.shape[2], w - x.shape[3]
        # Zero padding of the normalized image, centered (28 -> 32: 2 pixels each side).
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
    assert x.shape[1:] == (c, h, w), (model_name, tuple(x.shape))
    per_epoch = x.shape[0] // BATCH
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    batches = []
    for i in range(min(n_batches, per_epoch)):
        xb = x[i * BATCH:(i + 1) * BATCH].contiguous(memory_format=fmt)
        yb = y[i * BATCH:(i + 1) * BATCH].contiguous()
        batches.append((xb, yb))
    return batches


# --------------------------------------------------------------------------- pytorch side

class TorchTrainer:
    """One model + optimizer + masks, stepping exactly as described in the header."""

    def __init__(self, name, channels_last, seed):
        torch.manual_seed(seed)
        model = torch_models.build(name)
        cin = torch_models.INPUT_SHAPE[name][0]
        n = torch_models.count_params(model)
        want = torch_models.EXPECTED_PARAMS[(name, cin)]
        assert n == want, f"{name}: {n:,} trainable params, expected {want:,}"
        self.params = n
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.train()
        self.model = model
        self.opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM,
                                   weight_decay=WEIGHT_DECAY)
        gen = torch.Generator().manual_seed(seed + 1)
        self.masks = []
        with torch.no_grad():
            for _, w in torch_models.prunable(model):
                keep = int(round(DENSITY * w.numel()))
                flat = torch.zeros(w.numel())
                flat[torch.randperm(w.numel(), generator=gen)[:keep]] = 1.0
                mask = torch.empty_like(w)          # same shape and memory format as w
                mask.copy_(flat.view(w.shape))
                w.mul_(mask)
                self.masks.append((w, mask))
        self.n_masked = len(self.masks)
        self.cursor = 0           # index of the next batch
        self.loss_first = None    # loss of the very first step

    def step(self, xb, yb):
        self.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(xb), yb)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            for w, mask in self.masks:
                w.mul_(mask)
                buf = self.opt.state[w].get("momentum_buffer")
                if buf is not None:
                    buf.mul_(mask)
        return loss

    def run(self, batches, steps):
        """`steps` steps over consecutive batches (continuing where the last call stopped);
        returns (seconds, last loss)."""
        loss = None
        nb = len(batches)
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = self.step(*batches[self.cursor % nb])
            self.cursor += 1
            if self.loss_first is None:
                self.loss_first = float(loss)
        seconds = time.perf_counter() - t0
        return seconds, float(loss) if loss is not None else float("nan")


class TorchBench:
    """The PyTorch half for one model: picks the layout, builds the trainer, warms it up;
    then every timed() call times `steps` more steps of the same training run."""

    def __init__(self, name, steps, warmup, repeats, args, log):
        layouts = [False]
        if name in CONV_MODELS:
            layouts = {"auto": [False, True], "contiguous": [False],
                       "channels_last": [True]}[args.layout]
        chosen = layouts[0]
        self.trials = {}
        if len(layouts) > 1:
            # Quick trial of each layout on a fresh model; keep the faster one.
            n = args.layout_trial_steps or max(3, min(20, steps // 10))
            for cl in layouts:
                batches = make_batches(args.data, name, n + 2, cl)
                tr = TorchTrainer(name, cl, args.seed)
                tr.run(batches, 2)
                sec, _ = tr.run(batches, n)
                self.trials[layout_name(cl)] = n * BATCH / sec
            chosen = max(layouts, key=lambda cl: self.trials[layout_name(cl)])
            log("    layout trial (%d steps each): %s" % (n, ", ".join(
                f"{k} {v:,.0f} img/s" for k, v in self.trials.items())))
        self.layout = layout_name(chosen)
        # make_batches caps this at one epoch; the loop then wraps around.
        self.batches = make_batches(args.data, name, warmup + steps * repeats, chosen)
        self.trainer = TorchTrainer(name, chosen, args.seed)
        self.trainer.run(self.batches, warmup)
        self.steps = steps
        self.last_loss = float("nan")

    def timed(self):
        sec, last = self.trainer.run(self.batches, self.steps)
        self.last_loss = last
        if not np.isfinite(last):
            raise RuntimeError(f"loss is {last} after {self.trainer.cursor} steps")
        return self.steps * BATCH / sec


def layout_name(channels_last):
    return "channels_last" if channels_last else "contiguous"


# --------------------------------------------------------------------------- sparsetrain side

def sparsetrain_cmd(args, name, steps, warmup):
    return [args.binary, "bench", "--model", name, "--batch", str(BATCH),
            "--steps", str(steps), "--warmup", str(warmup), "--density", str(DENSITY),
            "--threads", str(args.threads), "--json"]


def sparsetrain_bench(cmd, name, steps, timeout, env, log):
    """Runs the binary; returns (result dict or None, error string or None)."""
    time.sleep(0.3)  # let PyTorch's OpenMP workers stop spinning before the child starts
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout, env=env)
    except FileNotFoundError:
        return None, f"binary not found: {cmd[0]} (build it, or pass --binary)"
    except PermissionError:
        return None, f"binary not executable: {cmd[0]}"
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return None, f"timed out after {timeout} s\n{err}"
    if proc.returncode != 0:
        out = f"--- stdout (tail) ---\n{tail(proc.stdout)}" if proc.stdout.strip() else ""
        return None, f"exit status {proc.returncode}\n--- stderr ---\n{proc.stderr}{out}"
    lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
    if not lines:
        return None, (f"no JSON line on stdout\n--- stdout (tail) ---\n{tail(proc.stdout)}"
                      f"--- stderr ---\n{proc.stderr}")
    try:
        res = json.loads(lines[-1])
        ips = float(res["images_per_s"])
    except (ValueError, KeyError, TypeError) as e:
        return None, f"bad JSON line ({e}): {lines[-1]}\n--- stderr ---\n{proc.stderr}"
    if not np.isfinite(ips) or ips <= 0:
        return None, f"images_per_s is {ips}: {lines[-1]}"
    if res.get("model", name) != name:
        log(f"    warning: sparsetrain reported model {res.get('model')!r}, asked for {name!r}")
    if res.get("steps", steps) != steps:
        log(f"    warning: sparsetrain reported steps={res.get('steps')}, asked for {steps}")
    if res.get("batch", BATCH) != BATCH:
        log(f"    warning: sparsetrain reported batch={res.get('batch')}, asked for {BATCH}")
    res["images_per_s"] = ips
    return res, None


def tail(text, n=20):
    lines = (text or "").splitlines()[-n:]
    return "\n".join(lines) + ("\n" if lines else "")


# --------------------------------------------------------------------------- report

HEADERS = ["model", "sparsetrain images/s", "pytorch images/s", "ratio (ours/pytorch)",
           "torch layout"]


def median(xs):
    return float(np.median(xs)) if xs else float("nan")


def table_rows(rows):
    out = []
    for r in rows:
        ours_ok = bool(r["ours"]) and not r["ours_failed"]
        torch_ok = bool(r["torch"]) and not r["torch_failed"]
        ours = f"{median(r['ours']):,.1f}" if ours_ok else "FAILED"
        theirs = f"{median(r['torch']):,.1f}" if torch_ok else "FAILED"
        ratio = f"{median(r['ours']) / median(r['torch']):.3f}" if ours_ok and torch_ok else "-"
        out.append([r["model"], ours, theirs, ratio, r["layout"] or "-"])
    return out


def text_table(rows):
    body = table_rows(rows)
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(HEADERS)]
    right = [False, True, True, True, False]

    def fmt(cells):
        return "  ".join(c.rjust(w) if r else c.ljust(w)
                         for c, w, r in zip(cells, widths, right)).rstrip()

    return "\n".join([fmt(HEADERS), fmt(["-" * w for w in widths])] + [fmt(b) for b in body])


def markdown_table(rows):
    lines = ["| " + " | ".join(HEADERS) + " |", "|---|---:|---:|---:|---|"]
    lines += ["| " + " | ".join(b) + " |" for b in table_rows(rows)]
    return "\n".join(lines)


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def context_lines(info, args, command):
    return [
        f"machine: {info['host']}, nproc {info['nproc']} (usable {info['usable_cpus']}), "
        f"CPU: {info['cpu']}",
        f"torch {info['torch']} (mkldnn {'on' if info['mkldnn'] else 'off'}), "
        f"numpy {info['numpy']}, python {info['python']}",
        f"threads: {args.threads} (both engines); batch {BATCH}; density {DENSITY} (random mask "
        f"on every conv/linear weight); warmup {args.warmup}; repeats {args.repeats} (median); "
        f"SGD lr {LR}, momentum {MOMENTUM}, weight decay {WEIGHT_DECAY}; Fashion-MNIST train set",
        f"PyTorch OMP_WAIT_POLICY: {info['omp_wait_policy']} (sparsetrain gets the caller's "
        f"environment unchanged)",
        f"command (cwd {os.getcwd()}): {command}",
    ]


def write_markdown(path, rows, info, args, command, started, load_before, load_after):
    lines = [f"# CPU training throughput: sparsetrain vs PyTorch ({started:%Y-%m-%d})", "",
             f"- date: {started:%Y-%m-%d %H:%M:%S %z}"]
    lines += ["- " + ln for ln in context_lines(info, args, command)[:-1]]
    lines += [f"- load average (1/5/15 min) before: {load_before}, after: {load_after}",
              f"- command (cwd `{os.getcwd()}`):", "", "```", command, "```", "",
              markdown_table(rows), "",
              "| model | timed steps | params | sparsetrain images/s, each run "
              "| pytorch images/s, each run | torch layout trial (img/s) | sparsetrain command |",
              "|---|---:|---:|---|---|---|---|"]
    for r in rows:
        trials = ", ".join(f"{k} {v:,.0f}" for k, v in r["trials"].items()) or "-"
        lines.append(
            f"| {r['model']} | {r['steps']} | {r['params'] or '-'} "
            f"| {', '.join(f'{v:,.0f}' for v in r['ours']) or '-'} "
            f"| {', '.join(f'{v:,.0f}' for v in r['torch']) or '-'} "
            f"| {trials} | `{shlex.join(r['cmd'])}` |")
    lines += ["",
              "Both engines ran back to back on the same machine in one run (interleaved when "
              "repeats > 1); compare the ratio across runs, not the absolute images/s: the "
              "machines are shared and noisy."]
    failed = [r for r in rows if r["errors"]]
    if failed:
        lines += ["", "## Failures", ""]
        for r in failed:
            for side, err in r["errors"]:
                first = err.strip().splitlines()[0] if err.strip() else "(no message)"
                lines.append(f"- {r['model']} ({side}): {first}")
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- main

def parse_steps(text, models):
    """'30' -> every model 30; 'resnet20=10,lenet5=50' -> those, defaults elsewhere."""
    steps = {m: DEFAULT_STEPS[m] for m in models}
    if text is None:
        return steps
    if "=" not in text:
        n = int(text)
        return {m: n for m in models}
    for part in text.split(","):
        k, v = part.split("=", 1)
        k = k.strip()
        if k not in DEFAULT_STEPS:
            raise ValueError(f"unknown model {k!r}")
        if k in steps:
            steps[k] = int(v)
    return steps


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="CPU training throughput, sparsetrain vs PyTorch, side by side in one run.")
    ap.add_argument("--binary", default="build/sparsetrain",
                    help="sparsetrain executable (default: build/sparsetrain)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="threads for both engines (default: os.cpu_count() = %(default)s)")
    ap.add_argument("--steps", default=None,
                    help="timed steps: N for every model, or name=N,... "
                         "(default: resnet20 30, lenet300 and lenet5 200)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed warmup steps (default 5)")
    ap.add_argument("--models", default=",".join(MODELS),
                    help="comma list from %s (default: all)" % ",".join(MODELS))
    ap.add_argument("--out", default=None,
                    help="also write the table as markdown, e.g. bench/results/DATE-cpu.md")
    ap.add_argument("--repeats", type=int, default=1,
                    help="timed runs per model and engine, interleaved; the table shows the "
                         "median (default 1)")
    ap.add_argument("--data", default=DEFAULT_DATA,
                    help="directory with train-{images-idx3,labels-idx1}-ubyte.gz")
    ap.add_argument("--layout", choices=("auto", "contiguous", "channels_last"), default="auto",
                    help="PyTorch memory format for conv models (default auto: try both, "
                         "keep the faster)")
    ap.add_argument("--layout-trial-steps", type=int, default=0,
                    help="timed steps per layout in the auto trial (default: steps/10 in [3, 20])")
    ap.add_argument("--omp-wait-policy", choices=("passive", "active", "inherit"),
                    default="passive",
                    help="OMP_WAIT_POLICY for PyTorch in this process (default passive: with "
                         "libgomp's default spinning, PyTorch on 2 shared cores is several times "
                         "slower and erratic; inherit = leave the environment alone). Ignored "
                         "when OMP_WAIT_POLICY is already set.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=1800,
                    help="seconds allowed for each sparsetrain run (default 1800)")
    ap.add_argument("--skip-sparsetrain", action="store_true",
                    help="run only the PyTorch half (the sparsetrain column shows FAILED)")
    args = ap.parse_args(argv)

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        ap.error(f"--models: unknown {bad}; choose from {','.join(MODELS)}")
    try:
        steps = parse_steps(args.steps, models)
    except ValueError as e:
        ap.error(f"--steps: {e}")
    if (any(s <= 0 for s in steps.values()) or args.warmup < 0 or args.threads <= 0
            or args.repeats <= 0):
        ap.error("--steps, --threads and --repeats must be positive, --warmup non-negative")

    # The child gets the caller's environment; only this process's libgomp sees the policy.
    child_env = dict(os.environ)
    if "OMP_WAIT_POLICY" in os.environ:
        policy = os.environ["OMP_WAIT_POLICY"] + " (from the environment)"
    elif args.omp_wait_policy == "inherit":
        policy = "unset (libgomp default)"
    else:
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
        policy = args.omp_wait_policy.upper()
    import_torch()
    torch.set_num_threads(args.threads)

    started = datetime.datetime.now().astimezone()
    command = shlex.join([sys.executable] + sys.argv[:1]
                         + (list(argv) if argv is not None else sys.argv[1:]))
    info = machine_info()
    info["omp_wait_policy"] = policy
    load_before = loadavg()

    def log(msg):
        print(msg, flush=True)

    log("sparsetrain vs PyTorch, CPU training throughput")
    for line in context_lines(info, args, command):
        log("  " + line)
    log(f"  load average before: {load_before}")
    log("")

    rows = []
    for name in models:
        s = steps[name]
        cmd = sparsetrain_cmd(args, name, s, args.warmup)
        row = {"model": name, "steps": s, "cmd": cmd, "ours": [], "torch": [], "errors": [],
               "ours_failed": args.skip_sparsetrain, "torch_failed": False, "layout": None,
               "trials": {}, "params": None}
        rows.append(row)
        log(f"[{name}] {s} timed steps after {args.warmup} warmup, {args.repeats} run(s)")
        if args.skip_sparsetrain:
            row["errors"].append(("sparsetrain", "skipped (--skip-sparsetrain)"))
        else:
            log("  sparsetrain: " + shlex.join(cmd))
        bench = None
        try:
            log(f"  pytorch: torch.set_num_threads({args.threads})")
            bench = TorchBench(name, s, args.warmup, args.repeats, args, log)
            row["layout"], row["trials"] = bench.layout, bench.trials
            row["params"] = f"{bench.trainer.params:,}"
            log(f"    {bench.layout}, {bench.trainer.params:,} params (asserted), "
                f"{bench.trainer.n_masked} masked weight tensors")
        except Exception as e:  # report it and go on with the other models
            row["torch_failed"] = True
            err = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
            row["errors"].append(("pytorch", err))
            log("  pytorch FAILED: " + err.rstrip().replace("\n", "\n    "))
        for rep in range(args.repeats):
            tag = f" (run {rep + 1}/{args.repeats})" if args.repeats > 1 else ""
            if not row["ours_failed"]:
                res, err = sparsetrain_bench(cmd, name, s, args.timeout, child_env, log)
                if err:
                    row["ours_failed"] = True
                    row["errors"].append(("sparsetrain", err))
                    log("  sparsetrain FAILED: " + err.rstrip().replace("\n", "\n    "))
                else:
                    row["ours"].append(res["images_per_s"])
                    log(f"  sparsetrain{tag}: {res['images_per_s']:,.1f} images/s")
            if not row["torch_failed"]:
                try:
                    row["torch"].append(bench.timed())
                    log(f"  pytorch{tag}:     {row['torch'][-1]:,.1f} images/s")
                except Exception as e:
                    row["torch_failed"] = True
                    err = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
                    row["errors"].append(("pytorch", err))
                    log("  pytorch FAILED: " + err.rstrip().replace("\n", "\n    "))
        if bench is not None and not row["torch_failed"]:
            log(f"  pytorch loss {bench.trainer.loss_first:.3f} -> {bench.last_loss:.3f} "
                f"over {bench.trainer.cursor} steps")
        log("")

    load_after = loadavg()
    log(text_table(rows))
    log("")
    log("ratio > 1: sparsetrain is faster. Compare ratios across runs, not absolute numbers.")
    log(f"load average before: {load_before}, after: {load_after}")
    try:
        if float(load_after.split()[0]) > 1.5 * info["usable_cpus"]:
            log("warning: the machine was busy (load average above 1.5 x CPUs); "
                "figures are noisy, consider --repeats 3")
    except ValueError:
        pass
    if args.out:
        write_markdown(args.out, rows, info, args, command, started, load_before, load_after)
        log(f"wrote {args.out}")
    failed = [r["model"] for r in rows if r["errors"]]
    if failed:
        log(f"FAILED rows: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
