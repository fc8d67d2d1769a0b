"""PyTorch twins of the sparsetrain models used by the CPU benchmark.

Definitions follow /work/shared/spec/models.md exactly; EXPECTED_PARAMS holds the
trainable-parameter counts that the benchmark asserts before timing anything.

    lenet300  1x28x28  Linear 784-300, ReLU, 300-100, ReLU, 100-10
    lenet5    1x28x28  Conv(1,6,5,pad 2), ReLU, MaxPool2, Conv(6,16,5), ReLU, MaxPool2,
                       flatten, Linear 400-120, ReLU, 120-84, ReLU, 84-10
    resnet20  Cx32x32  He et al. 2016 CIFAR ResNet, 16/32/64 channels, 3 BasicBlocks per
                       stage, BN, no conv bias, shortcut option B (1x1 conv stride s + BN
                       when the shape changes, as in open_lth), global avg pool, Linear 64-10
    vit-tiny  Cx32x32  ViT (Dosovitskiy et al. 2021), ViT-Tiny widths: 4x4 patch conv to dim 192
                       (64 tokens), cls token, learned position embedding (65 tokens), 12
                       pre-LN blocks (LayerNorm eps 1e-5, qkv Linear 192-576, 3 heads, proj,
                       MLP 192-768-192 with exact GELU), final LayerNorm, head on the cls
                       token; timm's state-dict names. vit-tiny6: the same with 6 blocks.

Only torch is needed; nothing here imports sparsetrain.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

# (model name, input channels) -> trainable parameters.
EXPECTED_PARAMS = {
    ("lenet300", 1): 266_610,
    ("lenet5", 1): 61_706,
    ("resnet20", 3): 272_474,
    ("resnet20", 1): 272_474 - 2 * 9 * 16,  # = 272,186: the stem conv loses 2 input channels
    ("vit-tiny", 3): 5_362_762,             # derived in models/vit.cpp
    ("vit-tiny", 1): 5_362_762 - 192 * 2 * 16,  # the patch embedding loses 2 input channels
    ("vit-tiny6", 3): 2_693_578,
}

# (channels, height, width) of one input image as the CPU benchmark feeds it.
INPUT_SHAPE = {
    "lenet300": (1, 28, 28),
    "lenet5": (1, 28, 28),
    "resnet20": (1, 32, 32),  # Fashion-MNIST zero-padded 28 -> 32, centered
    "vit-tiny": (1, 32, 32),
    "vit-tiny6": (1, 32, 32),
}


class LeNet300(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc1 = nn.Linear(784, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x):
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class LeNet5(nn.Module):
    def __init__(self, in_channels=1, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)   # 6x28x28 -> 6x14x14
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)   # 16x10x10 -> 16x5x5
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            # Option B: projection shortcut.
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        else:
            self.shortcut = nn.Sequential()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """widths: the channels of the three stages (a structurally pruned twin has fewer)."""

    def __init__(self, depth=20, in_channels=3, num_classes=10, widths=(16, 32, 64)):
        super().__init__()
        assert (depth - 2) % 6 == 0, "CIFAR ResNet depth must be 6n+2"
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers = []
        in_planes = widths[0]
        for planes, stride in ((widths[0], 1), (widths[1], 2), (widths[2], 2)):
            for i in range(n):
                layers.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(widths[2], num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.blocks(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class PatchEmbed(nn.Module):
    def __init__(self, in_channels, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, D, h, w] -> [B, h*w, D], row-major patches


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                      # [B, H, T, d/H] each
        attn = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class ViTBlock(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """hidden: the MLP width, or one width per block (a structurally pruned export)."""

    def __init__(self, depth=12, in_channels=3, num_classes=10, image_size=32, patch=4, dim=192, heads=3,
                 hidden=768):
        super().__init__()
        widths = hidden if isinstance(hidden, (list, tuple)) else [hidden] * depth
        assert len(widths) == depth and image_size % patch == 0
        self.patch_embed = PatchEmbed(in_channels, dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (image_size // patch) ** 2 + 1, dim))
        self.blocks = nn.Sequential(*[ViTBlock(dim, heads, w) for w in widths])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        for m in self.modules():  # timm's init: trunc normal std .02, zero biases, LayerNorm 1 / 0
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.cls_token, std=0.02, a=-0.04, b=0.04)
        nn.init.trunc_normal_(self.pos_embed, std=0.02, a=-0.04, b=0.04)

    @classmethod
    def from_state_dict(cls, state, num_classes, heads=3):
        """The twin of an exported state dict: depth, channels, image size and MLP widths read from it
        (the head count is not in the weights: ViT-Tiny's 3)."""
        depth = 0
        while f"blocks.{depth}.norm1.weight" in state:
            depth += 1
        w = state["patch_embed.proj.weight"]
        dim, channels, patch = w.shape[0], w.shape[1], w.shape[2]
        side = round((state["pos_embed"].shape[1] - 1) ** 0.5) * patch
        widths = [state[f"blocks.{i}.mlp.fc1.weight"].shape[0] for i in range(depth)]
        return cls(depth, channels, num_classes, side, patch, dim, heads, widths)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def build(name, in_channels=None):
    """Returns the model for `name`; in_channels defaults to the benchmark's input."""
    if in_channels is None:
        in_channels = INPUT_SHAPE[name][0]
    if name == "lenet300":
        assert in_channels == 1
        return LeNet300()
    if name == "lenet5":
        return LeNet5(in_channels)
    if name == "resnet20":
        return CifarResNet(20, in_channels)
    if name in ("vit-tiny", "vit-tiny6"):
        return VisionTransformer(12 if name == "vit-tiny" else 6, in_channels)
    raise ValueError(f"unknown model {name!r}")


def count_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def prunable(model):
    """(name, weight) of every conv/linear weight: the tensors that get masks.
    Biases and BatchNorm parameters are never masked."""
    return [(f"{mod_name}.weight", m.weight) for mod_name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))]


def check_param_counts():
    """Asserts every count in EXPECTED_PARAMS; returns {(name, cin): count}."""
    got = {}
    for (name, cin), want in EXPECTED_PARAMS.items():
        n = count_params(build(name, cin))
        assert n == want, f"{name} with {cin} input channel(s): {n:,} params, expected {want:,}"
        got[(name, cin)] = n
    return got


if __name__ == "__main__":
    for (name, cin), n in check_param_counts().items():
        print(f"{name:9s} in_channels={cin}  {n:>9,} params  OK")
