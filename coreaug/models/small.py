"""Small networks for the embedded digits data (and other tiny inputs)."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """Flatten → hidden layers (ReLU, or sigmoid as in the paper's theory nets) → ``fc``."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: tuple[int, ...] = (128,),
        activation: str = "relu",
    ):
        super().__init__()
        acts = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
        if activation not in acts:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(acts)}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), acts[activation]()]
            width = h
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(width, num_classes)
        self.embedding_dim = width

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding (the input of ``fc``)."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(x))


class SmallCNN(nn.Module):
    """Two 3×3 conv blocks + global average pooling + ``fc``; fast on 8×8 digits on a CPU."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(2 * width, num_classes)
        self.embedding_dim = 2 * width

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(x))
