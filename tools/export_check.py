#!/usr/bin/python3
"""Loads a `sparsetrain export` file into the PyTorch twin of its model and checks that PyTorch's
logits match sparsetrain's on the same input (written by `sparsetrain export --check`).

usage: tools/export_check.py MODEL EXPORT.safetensors [--tolerance 1e-4] [--same-as ORIGINAL.safetensors]
       tools/export_check.py MODEL OUT.safetensors --make-state --input CxS --classes K [--seed N]
Exit 0 when the largest relative difference is within the tolerance (and, with --same-as, every tensor
of ORIGINAL is in the export with the same values: an imported state dict exported again). --make-state
writes a randomly initialised state dict of MODEL's twin (BatchNorm running statistics random too) for
`sparsetrain import`. Needs Debian's python3-torch and numpy (python3-torchvision for resnet18 and
resnet50); reads and writes safetensors with the standard library (json + struct)."""
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


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, tensor in tensors.items():
        array = tensor.detach().cpu().numpy()
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[array.dtype]
        blob = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def torchvision_resnet(model, in_channels, classes):
    """torchvision's ResNet-18/50; a stem for in_channels other than 3 (Fashion-MNIST: 1)."""
    import torchvision
    twin = getattr(torchvision.models, model)(num_classes=classes)
    if in_channels != 3:
        twin.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    return twin


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
    parser.add_argument("--same-as", help="the state dict that was imported: every tensor must come back equal")
    parser.add_argument("--make-state", action="store_true", help="write a random state dict of the twin")
    parser.add_argument("--input", default="1x28", help="--make-state: CxS, channels and image side")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.make_state:
        torch.manual_seed(args.seed)
        channels, size = (int(v) for v in args.input.split("x"))
        if args.model in ("resnet18", "resnet50"):
            twin = torchvision_resnet(args.model, channels, args.classes)
        elif args.model == "lenet5":
            twin = lenet5(channels, size, args.classes, [6, 16, 120, 84])
        else:
            sys.exit(f"export_check: --make-state knows resnet18, resnet50 and lenet5, not '{args.model}'")
        for module in twin.modules():  # evaluation-mode BatchNorm then uses statistics that matter
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.data.uniform_(0.5, 1.5)
                module.bias.data.uniform_(-0.5, 0.5)
        write_safetensors(args.export, twin.state_dict())
        print(f"wrote {args.export}: {len(twin.state_dict())} tensors of {args.model} ({args.input}, {args.classes} classes)")
        return
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
    elif args.model in ("resnet18", "resnet50"):
        twin = torchvision_resnet(args.model, in_channels, classes)
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
    if args.same_as:
        original = read_safetensors(args.same_as)
        for name, tensor in original.items():
            if name.endswith("num_batches_tracked"):
                continue
            if name not in state:
                sys.exit(f"export_check: {name} of {args.same_as} is missing from the export")
            if not torch.equal(tensor, state[name]):
                difference = (tensor - state[name]).abs().max().item()
                sys.exit(f"export_check: {name} differs from {args.same_as} (largest difference {difference:.3e})")
        print(f"{args.model}: every tensor of {args.same_as} came back unchanged")
    twin.eval()
    with torch.no_grad():
        logits = twin(x)
    difference = (logits - expected).abs().max().item() / max(expected.abs().max().item(), 1e-12)
    print(f"{args.model}: {len(weights)} tensors loaded strictly, {len(masks)} masks; largest relative logit "
          f"difference {difference:.3e} (tolerance {args.tolerance:g})")
    sys.exit(0 if difference <= args.tolerance else 1)


if __name__ == "__main__":
    main()
