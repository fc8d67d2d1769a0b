#!/usr/bin/env python3
"""GPU training throughput of PyTorch on the benchmark models (spec/bench.md, GPU section), the
baseline sparsetrain's CUDA backend is compared with. Runs on the GPU machines (their python3 has
PyTorch 2.11); called by tools/gpu/check.sh, which puts sparsetrain's own figures beside these.

Per model and batch: images/s of the training step (forward, cross-entropy, backward, SGD momentum
0.9 with weight decay 5e-4, then the weight masks of --density re-applied to every conv/linear weight
and its momentum buffer, as sparsetrain does inside its optimizer step), in three modes:
  eager      channels_last, torch.backends.cudnn.benchmark = True, TF32 allowed (fp32 storage)
  compile    torch.compile(model) of the same (default mode), after its compilation steps
  bf16       eager under torch.autocast(bfloat16) (the spec reports bf16 separately)
W warm-up steps untimed, then S steps timed between two torch.cuda.synchronize() calls.

Like with like (issue 16): --input sets the image shape (1x28x28 is Fashion-MNIST, what `sparsetrain
bench` trains on), and --feed says how a batch reaches the step:
  resident   one random batch made on the GPU once (no transfer, no host read in the step)
  upload     each step copies a host batch to the GPU and reads the loss back with .item(), as
             `sparsetrain bench --device cuda` does today (one synchronisation per step)
--device cpu runs the same code on the CPU (tools/gpu/check.sh --dry-run checks the script there).

usage: gpu_vs_pytorch.py [--models resnet20,vgg19,...] [--batches 128,512] [--steps 50]
                         [--warmup 15] [--modes eager,compile,bf16] [--input 3x32x32]
                         [--feed resident,upload] [--density 0.5] [--device cuda] [--out FILE.md]"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import torch_models  # noqa: E402


def build(name, shape):
    if name in ("resnet20", "vit-tiny", "vit-tiny6"):
        return torch_models.build(name, shape[0]), shape
    if name == "vgg19":
        cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]
        layers, c = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c = v

        class Vgg(nn.Module):
            def __init__(self):
                super().__init__()
                self.features = nn.Sequential(*layers)
                self.fc = nn.Linear(512, 10)

            def forward(self, x):
                return self.fc(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))

        model = Vgg()
        assert sum(p.numel() for p in model.parameters()) == 20_040_522, "vgg19 count differs from the spec"
        return model, (3, 32, 32)
    if name == "mobilenetv2":
        import torchvision
        return torchvision.models.mobilenet_v2(num_classes=10), (3, 32, 32)
    raise SystemExit(f"gpu_vs_pytorch: unknown model {name!r}")


def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_mode(name, batch, mode, steps, warmup, shape, feed, density, device):
    torch.manual_seed(0)
    model, shape = build(name, shape)
    model = model.to(device).to(memory_format=torch.channels_last)
    masks = {}
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            masks[m.weight] = (torch.rand_like(m.weight) < density).float()
    with torch.no_grad():
        for w, mask in masks.items():
            w.mul_(mask)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    host_x = torch.randn(batch, *shape)
    host_y = torch.randint(0, 10, (batch,))
    x = host_x.to(device).to(memory_format=torch.channels_last)
    y = host_y.to(device)
    run = torch.compile(model) if mode == "compile" else model

    def step():
        opt.zero_grad(set_to_none=True)
        if feed == "upload":  # a fresh copy from host memory every step, as sparsetrain uploads its batch
            xs = host_x.to(device).to(memory_format=torch.channels_last)
            ys = host_y.to(device)
        else:
            xs, ys = x, y
        if mode == "bf16":
            with torch.autocast(device, dtype=torch.bfloat16):
                loss = F.cross_entropy(run(xs), ys)
        else:
            loss = F.cross_entropy(run(xs), ys)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for w, mask in masks.items():
                w.mul_(mask)
                buf = opt.state[w].get("momentum_buffer")
                if buf is not None:
                    buf.mul_(mask)
        if feed == "upload":
            loss.item()  # the host read of the loss that sparsetrain's step makes

    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return batch * steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="resnet20")
    parser.add_argument("--batches", default="128,512")
    parser.add_argument("--modes", default="eager,compile,bf16")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--input", default="3x32x32", help="image shape CxHxW (Fashion-MNIST: 1x28x28)")
    parser.add_argument("--feed", default="resident", help="resident, upload or both (comma-separated)")
    parser.add_argument("--density", type=float, default=0.5, help="random-mask density of every conv/linear weight")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    try:
        shape = tuple(int(v) for v in args.input.split("x"))
        assert len(shape) == 3 and min(shape) > 0
    except (ValueError, AssertionError):
        raise SystemExit(f"gpu_vs_pytorch: --input {args.input!r}: expected CxHxW, e.g. 1x28x28")
    feeds = args.feed.split(",")
    for feed in feeds:
        if feed not in ("resident", "upload"):
            raise SystemExit(f"gpu_vs_pytorch: --feed {feed!r}: expected resident or upload")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_vs_pytorch: --device cuda but torch.cuda.is_available() is False")
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    where = (f"{torch.cuda.get_device_name()}, cuDNN {torch.backends.cudnn.version()}" if args.device == "cuda"
             else "the CPU (dry run)")
    lines = [f"PyTorch {torch.__version__} on {where}; input {args.input}, density {args.density}",
             "", "| model | batch | mode | feed | images/s |", "|---|---:|---|---|---:|"]
    for name in args.models.split(","):
        for batch in [int(b) for b in args.batches.split(",")]:
            for mode in args.modes.split(","):
                for feed in feeds:
                    try:
                        ips = time_mode(name, batch, mode, args.steps, args.warmup, shape, feed, args.density,
                                        args.device)
                        lines.append(f"| {name} | {batch} | {mode} | {feed} | {ips:,.0f} |")
                    except Exception as e:  # a mode that fails (e.g. compile) must not hide the others
                        lines.append(f"| {name} | {batch} | {mode} | {feed} | failed: {type(e).__name__}: "
                                     f"{str(e)[:80]} |")
                    print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
