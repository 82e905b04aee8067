"""CIFAR-style ResNets (He et al. 2016, Sec. 4.2): 3 stages of 16/32/64 channels, 6n+2 layers.

ResNet-20/32/44/56/110 use ``n = 3/5/7/9/18`` basic blocks per stage. Shortcuts that change shape
use a 1×1 convolution + BatchNorm (option B), which works for any input size, including 8×8 digits.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet for small images with ``blocks_per_stage`` basic blocks in each of 3 stages."""

    def __init__(self, blocks_per_stage: int, num_classes: int = 10, in_channels: int = 3, width: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers: list[nn.Module] = []
        in_planes = width
        for stage, planes in enumerate((width, 2 * width, 4 * width)):
            for b in range(blocks_per_stage):
                stride = 2 if (stage > 0 and b == 0) else 1
                layers.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        self.embedding_dim = in_planes
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        return torch.flatten(self.pool(out), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(x))


def resnet20(**kw) -> CifarResNet:
    return CifarResNet(3, **kw)


def resnet32(**kw) -> CifarResNet:
    return CifarResNet(5, **kw)


def resnet44(**kw) -> CifarResNet:
    return CifarResNet(7, **kw)


def resnet56(**kw) -> CifarResNet:
    return CifarResNet(9, **kw)


def resnet110(**kw) -> CifarResNet:
    return CifarResNet(18, **kw)
