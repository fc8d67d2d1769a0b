#!/usr/bin/python3
"""CPU training throughput, sparsetrain against PyTorch, with the fair method (issue 17).

What it measures: images/s of the training-step loop (forward, cross-entropy loss, backward, SGD
momentum step, re-applying the weight masks) for lenet300, lenet5 and resnet20 (1x32x32) at batch
128 on Fashion-MNIST, at each --densities value (a random mask keeping that fraction of every
conv/linear weight; 1 = no mask, the dense step):
  * sparsetrain: `sparsetrain bench ... --json` with --sparse-kernels off (the masked dense step)
    and, below density 1, on (the sparse kernels);
  * PyTorch: the identical twin (torch_models.py) in a worker process of this script, once per
    PyTorch install: Debian's python3-torch (/usr/bin/python3) and the current PyPI release in
    the venv that tools/bench/torch_venv.sh makes (.venv-torch; a missing venv is reported and
    skipped).

The fair method: every measurement is a fresh process of its own (one engine, one wait policy),
each engine is run under OMP_WAIT_POLICY=PASSIVE and =ACTIVE, and the table shows each engine's
best policy (the median of --repeats runs under it; every run is listed in the report). On a
2-core shared VM libgomp's spin-waiting helps one engine and hurts another, and a PyTorch run in
the process that launches sparsetrain slows both; neither is the engine's reasonable best.

PyTorch side (the twin of what sparsetrain times):
  * torch.set_num_threads(T); model.train(); SGD(lr=0.05, momentum=0.9, weight_decay=5e-4).
  * Below density 1, a fixed random mask keeping exactly that fraction of every conv/linear weight
    (not biases, not BN), applied once at the start and, under torch.no_grad(), after every
    optimizer.step() to the weight and to its momentum buffer (PyTorch has no sparse training
    step: torch.sparse has no sparse convolution, and its sparse matmul does not train masked
    layers faster on the CPU, so the masked dense step is what PyTorch users run).
  * Data: the real Fashion-MNIST training set read with gzip + numpy, normalized with mean
    0.2860 / std 0.3530 (resnet20: then zero-padded 28 -> 32, centered), preloaded as tensors
    and walked in consecutive batches of 128, so data loading is not timed.
  * Conv models: contiguous (NCHW) and channels_last are both tried for a few steps and the
    faster one is timed (reported in the "torch layout" column); --layout forces one.
  * W warmup steps untimed, then S steps timed with time.perf_counter().

Usage (from the repository root):
  tools/bench/torch_venv.sh       # once: the PyPI PyTorch venv (.venv-torch)
  /usr/bin/python3 tools/bench/cpu_vs_pytorch.py --binary build/sparsetrain --densities 1,0.1,0.05 \
      --repeats 3 --out bench/results/$(date +%F)-cpu.md
  --models resnet20 --steps 10 --densities 1 for a quick look.

Needs Debian's python3 with python3-torch and numpy; it does not import sparsetrain.
Exit status: 0 when every measurement succeeded, 1 otherwise, 2 on bad arguments.
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

    def __init__(self, name, channels_last, seed, density):
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
            for _, w in (torch_models.prunable(model) if density < 1.0 else []):
                keep = int(round(density * w.numel()))
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
                tr = TorchTrainer(name, cl, args.seed, args.density)
                tr.run(batches, 2)
                sec, _ = tr.run(batches, n)
                self.trials[layout_name(cl)] = n * BATCH / sec
            chosen = max(layouts, key=lambda cl: self.trials[layout_name(cl)])
            log("    layout trial (%d steps each): %s" % (n, ", ".join(
                f"{k} {v:,.0f} img/s" for k, v in self.trials.items())))
        self.layout = layout_name(chosen)
        # make_batches caps this at one epoch; the loop then wraps around.
        self.batches = make_batches(args.data, name, warmup + steps * repeats, chosen)
        self.trainer = TorchTrainer(name, chosen, args.seed, args.density)
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


# --------------------------------------------------------------------------- the PyTorch worker

def worker(args):
    """One PyTorch measurement in this process (started by the orchestrator with the wait policy in
    its environment): prints one JSON line."""
    import_torch()
    torch.set_num_threads(args.threads)
    bench = TorchBench(args.models, args.steps_one, args.warmup, args.repeats, args,
                       lambda msg: print(msg, file=sys.stderr, flush=True))
    rates = [bench.timed() for _ in range(args.repeats)]
    print(json.dumps({"torch": torch.__version__, "mkldnn": torch.backends.mkldnn.is_available(),
                      "layout": bench.layout, "trials": bench.trials,
                      "params": bench.trainer.params, "images_per_s": rates,
                      "loss_first": bench.trainer.loss_first, "loss_last": bench.last_loss}),
          flush=True)
    return 0


def run_worker(python, args, name, steps, density, policy):
    """(result dict, None) or (None, error) of one PyTorch worker process."""
    cmd = [python, os.path.abspath(__file__), "--worker", "--models", name, "--steps", str(steps),
           "--warmup", str(args.warmup), "--repeats", "1", "--threads", str(args.threads),
           "--densities", str(density), "--data", args.data, "--layout", args.layout,
           "--layout-trial-steps", str(args.layout_trial_steps), "--seed", str(args.seed)]
    env = dict(os.environ, OMP_WAIT_POLICY=policy)
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=args.timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{type(e).__name__}: {e}", cmd
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return None, f"exit status {proc.returncode}\n{tail(proc.stderr)}", cmd
    res = json.loads(lines[-1])
    res["images_per_s"] = float(res["images_per_s"][0])
    return res, None, cmd


# --------------------------------------------------------------------------- report

POLICIES = ("PASSIVE", "ACTIVE")


def median(xs):
    return float(np.median(xs)) if xs else float("nan")


def best(runs):
    """runs: {policy: [images/s]} -> (best median, its policy); (nan, '-') when nothing ran."""
    medians = {p: median(v) for p, v in runs.items() if v}
    if not medians:
        return float("nan"), "-"
    policy = max(medians, key=medians.get)
    return medians[policy], policy


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def fmt_rate(value, policy):
    return "-" if not np.isfinite(value) else f"{value:,.0f} ({policy.lower()})"


def ratio(a, b):
    return f"{a / b:.2f}" if np.isfinite(a) and np.isfinite(b) and b > 0 else "-"


def report(rows, engines, args, command, started, load_before, load_after, versions):
    torch_names = [e for e in engines if e != "sparsetrain"]
    newest = torch_names[-1] if torch_names else None
    head = ["model", "density", "sparsetrain off", "sparsetrain on"] + \
        [f"PyTorch {versions.get(e, e)}" for e in torch_names]
    if newest:
        head += [f"off / PyTorch {versions.get(newest, newest)}",
                 f"on / PyTorch {versions.get(newest, newest)}"]
    head += ["on / off"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for r in rows:
        off, off_p = best(r["runs"].get(("sparsetrain", "off"), {}))
        on, on_p = best(r["runs"].get(("sparsetrain", "on"), {}))
        cells = [r["model"], f"{100 * r['density']:.0f}%", fmt_rate(off, off_p), fmt_rate(on, on_p)]
        newest_rate = float("nan")
        for e in torch_names:
            rate, pol = best(r["runs"].get((e, ""), {}))
            cells.append(fmt_rate(rate, pol))
            newest_rate = rate
        if newest:
            cells += [ratio(off, newest_rate), ratio(on, newest_rate)]
        cells.append(ratio(on, off))
        lines.append("| " + " | ".join(cells) + " |")
    out = [f"# CPU training throughput, sparsetrain against PyTorch, fair method ({started:%Y-%m-%d})", "",
           f"- date: {started:%Y-%m-%d %H:%M:%S %z}; machine: {platform.node()}, {os.cpu_count()} CPUs, "
           f"{cpu_model()}",
           f"- threads {args.threads} for every engine; batch {BATCH}; SGD lr {LR}, momentum {MOMENTUM}, "
           f"weight decay {WEIGHT_DECAY}; random masks at the row's density on every conv/linear weight "
           f"(100%: none); warmup {args.warmup}; timed steps {args.steps_text}",
           "- each figure: the engine's best wait policy (in brackets) of OMP_WAIT_POLICY=PASSIVE and "
           f"ACTIVE, each the median of {args.repeats} runs, every run a process of its own",
           "- PyTorch installs: " + ", ".join(f"{e}: torch {versions.get(e, '?')} ({py})"
                                                for e, py in engines.items() if e != "sparsetrain"),
           f"- load average (1/5/15 min) before: {load_before}, after: {load_after}",
           "- command (cwd `" + os.getcwd() + "`):", "", "```", command, "```", ""] + lines + [
           "", "sparsetrain off: the masked dense step (as PyTorch's); on: `--sparse-kernels on`. "
           "Ratios above 1: the left engine is faster.", "", "## Every run (images/s)", "",
           "| model | density | engine | policy | runs | command |", "|---|---:|---|---|---|---|"]
    for r in rows:
        for (engine, mode), runs in r["runs"].items():
            name = f"sparsetrain {mode}" if engine == "sparsetrain" else f"PyTorch {versions.get(engine, engine)}"
            for policy, values in runs.items():
                cmd = r["cmds"].get((engine, mode), [])
                out.append(f"| {r['model']} | {100 * r['density']:.0f}% | {name} | {policy} | "
                           f"{', '.join(f'{v:,.0f}' for v in values) or '-'} | `{shlex.join(cmd)}` |")
    failures = [(r["model"], r["density"], e) for r in rows for e in r["errors"]]
    if failures:
        out += ["", "## Failures", ""]
        out += [f"- {m} at {100 * d:.0f}%: {e.strip().splitlines()[0] if e.strip() else '(no message)'}"
                for m, d, e in failures]
    return "\n".join(out) + "\n", "\n".join(lines)


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
        description="CPU training throughput, sparsetrain against PyTorch (fair method: each engine "
                    "in its own process, both wait policies, each engine's best).")
    ap.add_argument("--binary", default="build/sparsetrain",
                    help="sparsetrain executable (default: build/sparsetrain)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="threads for every engine (default: os.cpu_count() = %(default)s)")
    ap.add_argument("--steps", default=None,
                    help="timed steps: N for every model, or name=N,... "
                         "(default: resnet20 30, lenet300 and lenet5 200)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed warmup steps (default 5)")
    ap.add_argument("--models", default=",".join(MODELS),
                    help="comma list from %s (default: all)" % ",".join(MODELS))
    ap.add_argument("--densities", default="1,0.1,0.05",
                    help="comma list of weight densities (default 1,0.1,0.05; 1 = dense, no masks)")
    ap.add_argument("--pythons", default=None,
                    help="name=python,... of the PyTorch installs (default: debian=/usr/bin/python3 "
                         "and pypi=.venv-torch/bin/python when that venv exists)")
    ap.add_argument("--policies", default="passive,active",
                    help="OMP_WAIT_POLICY values tried for every engine (default passive,active)")
    ap.add_argument("--out", default=None,
                    help="also write the report as markdown, e.g. bench/results/DATE-cpu.md")
    ap.add_argument("--repeats", type=int, default=1,
                    help="runs per engine and policy, interleaved; the median counts (default 1)")
    ap.add_argument("--data", default=DEFAULT_DATA,
                    help="directory with train-{images-idx3,labels-idx1}-ubyte.gz")
    ap.add_argument("--layout", choices=("auto", "contiguous", "channels_last"), default="auto",
                    help="PyTorch memory format for conv models (default auto: try both, "
                         "keep the faster)")
    ap.add_argument("--layout-trial-steps", type=int, default=0,
                    help="timed steps per layout in the auto trial (default: steps/10 in [3, 20])")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=1800,
                    help="seconds allowed for each run (default 1800)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        ap.error(f"--models: unknown {bad}; choose from {','.join(MODELS)}")
    try:
        steps = parse_steps(args.steps, models)
        densities = [float(d) for d in args.densities.split(",") if d.strip()]
    except ValueError as e:
        ap.error(f"--steps/--densities: {e}")
    if not densities or any(not 0.0 < d <= 1.0 for d in densities):
        ap.error(f"--densities: values in (0, 1] expected, got {args.densities!r}")
    if (any(s <= 0 for s in steps.values()) or args.warmup < 0 or args.threads <= 0
            or args.repeats <= 0):
        ap.error("--steps, --threads and --repeats must be positive, --warmup non-negative")
    policies = [p.strip().upper() for p in args.policies.split(",") if p.strip()]
    if not policies or any(p not in POLICIES for p in policies):
        ap.error(f"--policies: passive and/or active expected, got {args.policies!r}")
    args.steps_text = ", ".join(f"{m} {steps[m]}" for m in models)

    if args.worker:
        args.models, args.steps_one, args.density = models[0], steps[models[0]], densities[0]
        return worker(args)

    engines = {"sparsetrain": args.binary}
    if args.pythons:
        for part in args.pythons.split(","):
            name, _, py = part.partition("=")
            if not py:
                ap.error(f"--pythons: name=python expected, got {part!r}")
            engines[name.strip()] = py.strip()
    else:
        engines["debian"] = "/usr/bin/python3"
        if os.path.exists(".venv-torch/bin/python"):
            engines["pypi"] = ".venv-torch/bin/python"
        else:
            print("note: no .venv-torch (make it with tools/bench/torch_venv.sh): PyPI PyTorch skipped",
                  flush=True)
    versions = {}
    for e, py in engines.items():
        if e == "sparsetrain":
            continue
        try:
            versions[e] = subprocess.run([py, "-c", "import torch; print(torch.__version__)"],
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                         timeout=300).stdout.strip() or "?"
        except OSError:
            versions[e] = "?"

    started = datetime.datetime.now().astimezone()
    command = shlex.join([sys.executable] + sys.argv[:1] + (list(argv) if argv is not None else sys.argv[1:]))
    load_before = loadavg()
    print(f"fair CPU comparison: engines {', '.join(f'{e} ({versions.get(e, py)})' for e, py in engines.items())}, "
          f"policies {', '.join(policies)}, {args.repeats} repeat(s); load {load_before}", flush=True)
    rows = []
    failed = False
    for name in models:
        for density in densities:
            row = {"model": name, "density": density, "runs": {}, "cmds": {}, "errors": []}
            rows.append(row)
            for rep in range(args.repeats):
                for policy in policies:
                    for engine, target in engines.items():
                        modes = ["off", "on"] if engine == "sparsetrain" and density < 1.0 else \
                            (["off"] if engine == "sparsetrain" else [""])
                        for mode in modes:
                            if engine == "sparsetrain":
                                cmd = [target, "bench", "--model", name, "--batch", str(BATCH), "--steps",
                                       str(steps[name]), "--warmup", str(args.warmup), "--density", str(density),
                                       "--threads", str(args.threads), "--sparse-kernels", mode, "--json"]
                                res, err = sparsetrain_bench(cmd, name, steps[name], args.timeout,
                                                             dict(os.environ, OMP_WAIT_POLICY=policy),
                                                             lambda m: print(m, flush=True))
                            else:
                                res, err, cmd = run_worker(target, args, name, steps[name], density, policy)
                            row["cmds"][(engine, mode)] = cmd
                            runs = row["runs"].setdefault((engine, mode), {}).setdefault(policy, [])
                            label = f"{engine}{' ' + mode if mode else ''} {policy.lower()}"
                            if err:
                                failed = True
                                row["errors"].append(f"{label}: {err}")
                                print(f"[{name} {density:g}] {label}: FAILED {err.splitlines()[0]}", flush=True)
                            else:
                                runs.append(res["images_per_s"])
                                print(f"[{name} {density:g}] {label}: {res['images_per_s']:,.0f} images/s",
                                      flush=True)
    load_after = loadavg()
    text, table = report(rows, engines, args, command, started, load_before, load_after, versions)
    print("\n" + table + "\n", flush=True)
    if args.out:
        d = os.path.dirname(args.out)
        if d:
            os.makedirs(d, exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text)
        print(f"wrote {args.out}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
