"""PyTorch twins of the sparsetrain models used by the CPU benchmark.

Definitions follow /work/shared/spec/models.md exactly; EXPECTED_PARAMS holds the
trainable-parameter counts that the benchmark asserts before timing anything.

    lenet300  1x28x28  Linear 784-300, ReLU, 300-100, ReLU, 100-10
    lenet5    1x28x28  Conv(1,6,5,pad 2), ReLU, MaxPool2, Conv(6,16,5), ReLU, MaxPool2,
                       flatten, Linear 400-120, ReLU, 120-84, ReLU, 84-10
    resnet20  Cx32x32  He et al. 2016 CIFAR ResNet, 16/32/64 channels, 3 BasicBlocks per
                       stage, BN, no conv bias, shortcut option B (1x1 conv stride s + BN
                       when the shape changes, as in open_lth), global avg pool, Linear 64-10

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
}

# (channels, height, width) of one input image as the CPU benchmark feeds it.
INPUT_SHAPE = {
    "lenet300": (1, 28, 28),
    "lenet5": (1, 28, 28),
    "resnet20": (1, 32, 32),  # Fashion-MNIST zero-padded 28 -> 32, centered
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
    def __init__(self, depth=20, in_channels=3, num_classes=10):
        super().__init__()
        assert (depth - 2) % 6 == 0, "CIFAR ResNet depth must be 6n+2"
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers = []
        in_planes = 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                layers.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.blocks(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


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
