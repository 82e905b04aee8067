"""torchvision ResNet-18/50 behind the project's model convention (``embed`` + ``fc``).

No weights are ever downloaded. ``weights_path`` loads a local state dict saved from a torchvision
model (e.g. the ImageNet checkpoint copied onto the machine); when its classifier has another
number of classes (fine-tuning, as in the paper's Caltech256 runs), the classifier is re-initialised.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn



class TorchvisionResNet(nn.Module):
    """Wraps a torchvision ResNet so that ``embed(x)`` is the pooled feature and ``fc`` the classifier."""

    def __init__(
        self,
        arch: str,
        num_classes: int,
        in_channels: int = 3,
        weights_path: str | Path | None = None,
    ):
        super().__init__()
        net: torchvision.models.ResNet = getattr(torchvision.models, arch)(weights=None)
        if weights_path is not None:
            _load_local_weights(net, weights_path, arch)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        if net.fc.out_features != num_classes:
            net.fc = nn.Linear(net.fc.in_features, num_classes)
        self.fc = net.fc
        net.fc = nn.Identity()
        self.backbone = net
        self.embedding_dim = self.fc.in_features

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(x))


def _load_local_weights(net: nn.Module, weights_path: str | Path, label: str) -> None:
    """Load the state dict at ``weights_path`` (read by :func:`coreaug.io.read_state_dict`) into the
    torchvision ResNet ``net`` as built (3 channels, 1000 classes); every key must fit. One-line
    :class:`CheckpointError` otherwise."""
    from coreaug.io import fit_state_dict, read_state_dict

    fit_state_dict(net, read_state_dict(weights_path), weights_path, label=label)
