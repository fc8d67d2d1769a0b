#!/usr/bin/python3
"""Loads a `sparsetrain export` file into the PyTorch twin of its model and checks that PyTorch's
logits match sparsetrain's on the same input (written by `sparsetrain export --check`).

usage: tools/export_check.py MODEL EXPORT.safetensors [--tolerance 1e-4]
Exit 0 when the largest relative difference is within the tolerance. Needs Debian's python3-torch
and numpy; reads safetensors with the standard library (json + struct)."""
import argparse
import json
import pathlib
import struct
import sys

import numpy as np
import torch
from torch import nn


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = {"F32": np.float32, "I64": np.int64}[info["dtype"]]
        array = np.frombuffer(body[begin:end], dtype=dtype).reshape(info["shape"]).copy()
        tensors[name] = torch.from_numpy(array)
    return tensors


def lenet300(in_channels, size, classes, widths):
    h1, h2 = widths  # 300, 100 unless units were selected or channels pruned
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * size * size, h1), nn.ReLU(), nn.Linear(h1, h2),
                         nn.ReLU(), nn.Linear(h2, classes))


def lenet5(in_channels, size, classes, widths):
    c1, c2, f1, f2 = widths
    side = (size // 2 - 4) // 2
    return nn.Sequential(nn.Conv2d(in_channels, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(c1, c2, 5),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(c2 * side * side, f1), nn.ReLU(),
                         nn.Linear(f1, f2), nn.ReLU(), nn.Linear(f2, classes))


class Block(nn.Module):
    def __init__(self, state, prefix, stride):
        super().__init__()
        w1, w2 = state[prefix + "conv1.weight"], state[prefix + "conv2.weight"]
        self.conv1 = nn.Conv2d(w1.shape[1], w1.shape[0], 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w1.shape[0])
        self.conv2 = nn.Conv2d(w2.shape[1], w2.shape[0], 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(w2.shape[0])
        self.shortcut = None
        if prefix + "shortcut.0.weight" in state:
            ws = state[prefix + "shortcut.0.weight"]
            self.shortcut = nn.Sequential(nn.Conv2d(ws.shape[1], ws.shape[0], 1, stride, bias=False),
                                          nn.BatchNorm2d(ws.shape[0]))

    def forward(self, x):
        h = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(h + (self.shortcut(x) if self.shortcut is not None else x))


class CifarResNet(nn.Module):
    """He et al. 2016 CIFAR ResNet, option-B shortcuts, with the widths read from the state dict
    (so structurally pruned networks load too)."""

    def __init__(self, state, classes):
        super().__init__()
        w = state["conv1.weight"]
        self.conv1 = nn.Conv2d(w.shape[1], w.shape[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w.shape[0])
        for stage in range(1, 4):
            blocks = []
            b = 0
            while f"layer{stage}.{b}.conv1.weight" in state:
                blocks.append(Block(state, f"layer{stage}.{b}.", 2 if stage > 1 and b == 0 else 1))
                b += 1
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
        self.fc = nn.Linear(state["fc.weight"].shape[1], classes)

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        h = self.layer3(self.layer2(self.layer1(h)))
        return self.fc(h.mean(dim=(2, 3)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("export")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    state = read_safetensors(args.export)
    check = read_safetensors(args.export + ".check.safetensors")
    x, expected = check["input"], check["logits"]
    masks = {k: v for k, v in state.items() if k.endswith("_mask")}
    weights = {k: v for k, v in state.items() if not k.endswith("_mask")}
    in_channels, size, classes = x.shape[1], x.shape[2], expected.shape[1]
    if args.model == "lenet300":
        twin = lenet300(in_channels, size, classes, [weights["1.weight"].shape[0], weights["3.weight"].shape[0]])
    elif args.model == "lenet5":
        twin = lenet5(in_channels, size, classes, [weights["0.weight"].shape[0], weights["3.weight"].shape[0],
                                                   weights["7.weight"].shape[0], weights["9.weight"].shape[0]])
    elif args.model.startswith("resnet") and not args.model.endswith("a"):
        twin = CifarResNet(weights, classes)
    elif args.model in ("vit-tiny", "vit-tiny6"):
        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "bench"))
        from torch_models import VisionTransformer  # the one PyTorch ViT definition (tools/bench)
        twin = VisionTransformer.from_state_dict(weights, classes)
    else:
        sys.exit(f"export_check: no PyTorch twin for '{args.model}' yet")
    twin.load_state_dict(weights, strict=True)  # every name and shape must match
    for name, mask in masks.items():
        weight = weights[name[: -len("_mask")]]
        if torch.any((mask == 0) & (weight != 0)):
            sys.exit(f"export_check: {name}: a pruned weight is non-zero")
    twin.eval()
    with torch.no_grad():
        logits = twin(x)
    difference = (logits - expected).abs().max().item() / max(expected.abs().max().item(), 1e-12)
    print(f"{args.model}: {len(weights)} tensors loaded strictly, {len(masks)} masks; largest relative logit "
          f"difference {difference:.3e} (tolerance {args.tolerance:g})")
    sys.exit(0 if difference <= args.tolerance else 1)


if __name__ == "__main__":
    main()
