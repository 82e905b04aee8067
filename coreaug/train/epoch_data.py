"""What one epoch trains on: a concatenation of dataset views with per-example loss weights.

docs/paper-notes.md §4 "appending protocol": each epoch's set is the *main* set (all data, the subset S, or a
random subset), weak-augmented, **plus one strong-augmented copy of every element of S appended**,
so |epoch| = |main| + |S|. :func:`plan_epoch` decides indices and weights (pure, testable);
:class:`EpochDataset` realises a plan over the weak and strong views; :func:`make_loader` wraps it
in a seeded DataLoader (or a DistributedSampler under DDP).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from coreaug.errors import ConfigError

WEAK, STRONG = 0, 1  # view ids in an EpochDataset


@dataclass
class EpochPlan:
    """Indices into the training set and their loss weights for one epoch.

    ``main_*``: examples seen with the weak (in-place) transform; ``aug_*``: examples whose
    strong-augmented copy is appended.
    """

    main_indices: torch.Tensor
    main_weights: torch.Tensor
    aug_indices: torch.Tensor
    aug_weights: torch.Tensor

    def __len__(self) -> int:
        return int(self.main_indices.numel() + self.aug_indices.numel())

    @property
    def subset_size(self) -> int:
        return int(self.aug_indices.numel())


def plan_epoch(
    method: str,
    n: int,
    *,
    subset: torch.Tensor | None = None,
    gamma: torch.Tensor | None = None,
    random_main: torch.Tensor | None = None,
    aug_weight: str = "one",
) -> EpochPlan:
    """Compose one epoch for ``method`` (see :mod:`coreaug.train.config`).

    Args:
        method: ``full``, ``full-aug``, ``full+aug-subset``, ``subset-only``, ``random+aug-subset``, ``subset``.
        n: number of training examples.
        subset: indices of S (training-set positions) for the subset methods.
        gamma: weights of S (cluster sizes normalised to mean 1 for the coreset; ones otherwise).
        random_main: the random main subset of regime (c) (same size as S, weight 1).
        aug_weight: ``"one"`` — appended copies weigh 1 (official default); ``"gamma"`` — they weigh γ.
    """
    all_idx = torch.arange(n, dtype=torch.long)
    ones_n = torch.ones(n, dtype=torch.float32)
    empty_i, empty_w = torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.float32)
    if method == "full":
        return EpochPlan(all_idx, ones_n, empty_i, empty_w)
    if method == "full-aug":
        return EpochPlan(all_idx, ones_n, all_idx.clone(), ones_n.clone())
    if subset is None:
        raise ConfigError(f"method {method!r} needs a selected subset")
    subset = torch.as_tensor(subset, dtype=torch.long).cpu()
    gamma = torch.ones(subset.numel()) if gamma is None else torch.as_tensor(gamma, dtype=torch.float32).cpu()
    if gamma.shape != subset.shape:
        raise ConfigError(f"subset weights shape {tuple(gamma.shape)} does not match subset {tuple(subset.shape)}")
    aug_w = gamma.clone() if aug_weight == "gamma" else torch.ones(subset.numel())
    if method == "full+aug-subset":  # regime (a): all n originals (weight 1) ∪ aug(S)
        return EpochPlan(all_idx, ones_n, subset.clone(), aug_w)
    if method == "subset-only":  # regime (b): S weighted by γ ∪ aug(S)
        return EpochPlan(subset.clone(), gamma.clone(), subset.clone(), aug_w)
    if method == "random+aug-subset":  # regime (c): random subset (weight 1) ∪ aug(S)
        if random_main is None:
            raise ConfigError("method 'random+aug-subset' needs a random main subset")
        random_main = torch.as_tensor(random_main, dtype=torch.long).cpu()
        return EpochPlan(random_main, torch.ones(random_main.numel()), subset.clone(), aug_w)
    if method == "subset":  # baseline: S weighted by γ, no strong augmentation
        return EpochPlan(subset.clone(), gamma.clone(), empty_i, empty_w)
    raise ConfigError(f"unknown method {method!r}")


class EpochDataset(Dataset):
    """Concatenation of views with per-example weights: item ``k`` → ``(x, y, w, index, view)``.

    Args:
        views: the datasets views (index ``WEAK`` = weak transform, ``STRONG`` = strong transform);
            each returns ``(x, y, index)``.
        view_ids, indices, weights: parallel 1-D tensors, one entry per epoch example.
    """

    def __init__(self, views: Sequence[Dataset], view_ids: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor):
        if not (view_ids.shape == indices.shape == weights.shape and view_ids.ndim == 1):
            raise ConfigError("view_ids, indices and weights must be 1-D tensors of equal length")
        self.views = list(views)
        self.view_ids = view_ids.long()
        self.indices = indices.long()
        self.weights = weights.float()

    @classmethod
    def from_plan(cls, plan: EpochPlan, weak_view: Dataset, strong_view: Dataset) -> "EpochDataset":
        """Main set through ``weak_view`` followed by the appended copies through ``strong_view``."""
        view_ids = torch.cat([
            torch.full((plan.main_indices.numel(),), WEAK, dtype=torch.long),
            torch.full((plan.aug_indices.numel(),), STRONG, dtype=torch.long),
        ])
        return cls(
            [weak_view, strong_view],
            view_ids,
            torch.cat([plan.main_indices, plan.aug_indices]),
            torch.cat([plan.main_weights, plan.aug_weights]),
        )

    def __len__(self) -> int:
        return int(self.indices.numel())

    def __getitem__(self, k: int):
        v, i = int(self.view_ids[k]), int(self.indices[k])
        x, y, idx = self.views[v][i]
        return x, y, self.weights[k], idx, v


def derive_seed(*parts: int) -> int:
    """A deterministic 63-bit seed from integers (e.g. ``(seed, epoch, purpose)``)."""
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFFFFFFFFFF


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def worker_init_fn(worker_id: int) -> None:
    """Seed numpy/random in each loader worker from torch's per-worker seed (itself from the loader generator)."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    seed: int,
    num_workers: int = 0,
    distributed: bool = False,
    rank: int = 0,
    world_size: int = 1,
    epoch: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A shuffled, seeded loader. Under DDP a :class:`DistributedSampler` (same seed on every rank) splits it."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    sampler = None
    if distributed:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed % 2**31)
        sampler.set_epoch(epoch)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        generator=generator,
        num_workers=num_workers,
        worker_init_fn=worker_init_fn if num_workers > 0 else None,
        pin_memory=pin_memory,
        drop_last=False,
        persistent_workers=False,
    )
