"""Indexable datasets that return ``(x, y, index)``.

Images are held raw (``uint8``, ``C×H×W``) and every dataset is a cheap *view* that carries its
own transform: ``ds.with_transform(t)`` shares the storage and only swaps the transform. The
training loop uses one view per role (weak-augmented, strong-augmented, test-time), and the
``index`` lets per-example weights and coreset membership follow each example.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import Dataset

from coreaug.errors import DataError

Transform = Callable[[torch.Tensor], torch.Tensor]


class IndexedDataset(Dataset):
    """Base class: ``ds[i] -> (x, y, i)``; subclasses implement :meth:`load_image` and hold ``targets``."""

    targets: torch.Tensor
    transform: Transform | None

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def load_image(self, index: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def with_transform(self, transform: Transform | None) -> "IndexedDataset":
        """Return a view of the same examples with another transform."""
        raise NotImplementedError  # pragma: no cover - abstract

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        index = int(index)
        image = self.load_image(index)
        x = self.transform(image) if self.transform is not None else image
        return x, int(self.targets[index]), index

    @property
    def num_classes(self) -> int:
        return int(self.targets.max().item()) + 1 if len(self) else 0


class ArrayDataset(IndexedDataset):
    """An in-memory image dataset.

    Args:
        images: ``uint8`` tensor of shape ``(N, C, H, W)``.
        targets: integer labels of shape ``(N,)`` in ``[0, num_classes)``.
        transform: applied to each ``uint8`` image on access (``None``: return the raw image).
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor | Sequence[int], transform: Transform | None = None):
        targets = torch.as_tensor(targets, dtype=torch.long)
        if images.ndim != 4:
            raise DataError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
        if images.dtype != torch.uint8:
            raise DataError(f"images must be uint8, got {images.dtype}")
        if targets.ndim != 1 or targets.shape[0] != images.shape[0]:
            raise DataError(
                f"targets must have shape ({images.shape[0]},) to match the images, got {tuple(targets.shape)}"
            )
        if targets.numel() and int(targets.min()) < 0:
            raise DataError("targets must be non-negative class indices")
        self.images = images
        self.targets = targets
        self.transform = transform

    def load_image(self, index: int) -> torch.Tensor:
        return self.images[index]

    def with_transform(self, transform: Transform | None) -> "ArrayDataset":
        view = object.__new__(ArrayDataset)
        view.images, view.targets, view.transform = self.images, self.targets, transform
        return view

    def with_targets(self, targets: torch.Tensor) -> "ArrayDataset":
        """Return a view with replaced labels (e.g. after label-noise injection)."""
        return ArrayDataset(self.images, targets, self.transform)

    def materialize(self, transform: Transform, *, chunk: int = 4096) -> "TensorDataset":
        """Apply a **deterministic** batch-capable transform (e.g. the test-time ToDtype + Normalize)
        to every image once, in chunks, and return the result as an in-memory dataset.

        Repeated eval passes (proxies every R epochs, test accuracy every epoch) then cost only the
        forward pass instead of one Python-level transform call per image. Costs the transformed
        tensor's memory (float32: 4 bytes per pixel value).
        """
        parts = [transform(self.images[s : s + chunk]) for s in range(0, len(self), chunk)]
        x = torch.cat(parts) if parts else torch.empty(0)
        return TensorDataset(x, self.targets)


class TensorDataset(IndexedDataset):
    """Already-transformed examples held in memory: ``ds[i] -> (x[i], y[i], i)``, no transform."""

    def __init__(self, x: torch.Tensor, targets: torch.Tensor):
        if x.shape[0] != targets.shape[0]:
            raise DataError(f"x has {x.shape[0]} rows but targets has {targets.shape[0]}")
        self.x, self.targets, self.transform = x, torch.as_tensor(targets, dtype=torch.long), None

    def load_image(self, index: int) -> torch.Tensor:
        return self.x[index]

    def with_transform(self, transform: Transform | None) -> "TensorDataset":
        if transform is not None:
            raise DataError("a TensorDataset is already transformed; build views from the raw dataset instead")
        return self


@dataclass
class DataBundle:
    """A train/test pair plus what models and transforms need to know about the data."""

    name: str
    train: IndexedDataset
    test: IndexedDataset
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return (
            f"{self.name}: {len(self.train)} train / {len(self.test)} test, {self.num_classes} classes, "
            f"{self.in_channels}x{self.image_size}x{self.image_size}"
        )


def stratified_indices(targets: torch.Tensor, n: int, *, seed: int = 0) -> torch.Tensor:
    """``n`` sorted example indices drawn class by class: ceil(n / C) at random from each class,
    then ``n`` of those at random (so classes are as balanced as ``n`` allows); classes too small to
    give their share are topped up from the remaining examples. Seeded; ``n`` ≤ len(targets)."""
    targets = torch.as_tensor(targets)
    gen = torch.Generator().manual_seed(seed)
    classes = torch.unique(targets)
    per = -(-n // len(classes))
    picks = [torch.nonzero(targets == c).flatten()[torch.randperm(int((targets == c).sum()), generator=gen)[:per]]
             for c in classes]
    idx = torch.cat(picks)
    if idx.numel() < n:
        rest = torch.ones(targets.numel(), dtype=torch.bool)
        rest[idx] = False
        others = torch.nonzero(rest).flatten()
        idx = torch.cat([idx, others[torch.randperm(others.numel(), generator=gen)[: n - idx.numel()]]])
    return idx[torch.randperm(idx.numel(), generator=gen)[:n]].sort().values


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (unbiased) std of ``uint8`` ``(N, C, H, W)`` images on the [0, 1] scale.

    Accumulated in float64 over chunks of ``chunk`` images, so memory stays O(chunk) rather than a
    float copy of the whole set (1.2 GB for CIFAR, 15 GB for SVHN with ``extra``).
    """
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, images.shape[0], chunk):
        x = images[start : start + chunk].to(torch.float64) / 255.0
        total += x.sum(dim=(0, 2, 3))
        total_sq += (x * x).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    var = (total_sq - count * mean * mean) / max(count - 1, 1)
    std = var.clamp_min(0).sqrt().clamp_min(1e-6)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
