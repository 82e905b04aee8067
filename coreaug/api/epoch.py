"""What one epoch trains on: a concatenation of dataset views with per-example loss weights.

docs/paper-notes.md §4 "appending protocol": each epoch's set is the *main* set (all data, the subset S, or a
random subset), weak-augmented, **plus one strong-augmented copy of every element of S appended**,
so |epoch| = |main| + |S|. :func:`plan_epoch` decides indices and weights (pure, testable);
:class:`EpochDataset` realises a plan over the weak and strong views; :func:`make_loader` wraps it
in a seeded DataLoader (or a DistributedSampler under DDP); with loader workers,
:class:`PersistentEpochLoader` keeps one set of workers for the whole run instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from coreaug.errors import ConfigError
from coreaug.runtime import derive_seed, seed_everything

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


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    seed: int,
    distributed: bool = False,
    rank: int = 0,
    world_size: int = 1,
    epoch: int = 0,
    pin_memory: bool = False,
    shuffle: bool = True,
) -> DataLoader:
    """A shuffled, seeded loader in the main process (runs with loader workers use
    :class:`PersistentEpochLoader`). Under DDP a :class:`DistributedSampler` (same seed on every rank) splits it."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    sampler = None
    if distributed:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed % 2**31)
        sampler.set_epoch(epoch)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        generator=generator,
        num_workers=0,
        pin_memory=pin_memory,
        drop_last=False,
        persistent_workers=False,
    )


class _ViewsDataset(Dataset):
    """Every ``(view, index)`` pair once: item ``(k, item_seed)`` → ``(x, y, index, view)`` for
    ``view = k // n``, ``index = k % n``. The RNGs (torch, numpy, random) are seeded with
    ``item_seed`` before the transform runs, so an example's augmentation depends only on
    ``(seed, epoch, position)`` — not on the worker that happens to load it, nor on what that
    worker loaded before (persistent workers keep their RNG state across epochs)."""

    def __init__(self, views: Sequence[Dataset], n: int):
        self.views, self.n = list(views), int(n)

    def __len__(self) -> int:
        return len(self.views) * self.n

    def __getitem__(self, item: tuple[int, int]):
        k, item_seed = item
        seed_everything(item_seed)
        v, i = divmod(int(k), self.n)
        x, y, idx = self.views[v][i]
        return x, y, idx, v


class _EpochOrder(torch.utils.data.Sampler):
    """The current epoch's ``(universe id, item seed)`` list; replaced before each epoch."""

    def __init__(self) -> None:
        self.items: list[tuple[int, int]] = []

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class PersistentEpochLoader:
    """One DataLoader for the whole run: worker processes start once and stay (``persistent_workers``),
    instead of being forked again for each epoch's :class:`EpochDataset`.

    The workers hold the fixed weak and strong views; each epoch only the *order* changes (a sampler
    iterated in the main process) and the loss weights are looked up in the main process, so a new
    :class:`EpochPlan` costs nothing in the workers. Order: a seeded permutation of the plan (or
    :class:`~torch.utils.data.distributed.DistributedSampler`'s split of it under DDP, same seed on
    every rank); augmentations are seeded per item (see :class:`_ViewsDataset`), so the batches are
    the same for any ``num_workers`` and a resumed run replays them.

    :meth:`epoch` returns the loader itself; iterating it yields ``(x, y, w, index, view)`` batches
    like :func:`make_loader`.
    """

    def __init__(self, weak_view: Dataset, strong_view: Dataset, n: int, *, batch_size: int, num_workers: int,
                 pin_memory: bool = False, distributed: bool = False, rank: int = 0, world_size: int = 1):
        self.n = int(n)
        self.distributed, self.rank, self.world_size = distributed, rank, world_size
        self.order = _EpochOrder()
        self.weights = torch.zeros(2 * self.n, dtype=torch.float32)
        self.loader = DataLoader(
            _ViewsDataset([weak_view, strong_view], self.n), batch_size=batch_size, sampler=self.order,
            num_workers=num_workers, pin_memory=pin_memory, drop_last=False,
            persistent_workers=num_workers > 0,
        )

    def epoch(self, plan: EpochPlan, *, seed: int, epoch: int):
        """Set ``plan`` (shuffled with ``seed``) as this epoch's order and return an iterable of batches."""
        ids = torch.cat([plan.main_indices + WEAK * self.n, plan.aug_indices + STRONG * self.n])
        self.weights.zero_()
        self.weights[ids] = torch.cat([plan.main_weights, plan.aug_weights])
        if self.distributed:
            from torch.utils.data.distributed import DistributedSampler

            sampler = DistributedSampler(range(ids.numel()), num_replicas=self.world_size, rank=self.rank,
                                         shuffle=True, seed=seed % 2**31)
            sampler.set_epoch(epoch)
            positions = torch.as_tensor(list(sampler), dtype=torch.long)
        else:
            positions = torch.randperm(ids.numel(), generator=torch.Generator().manual_seed(seed))
        self.order.items = [(int(ids[p]), derive_seed(seed, int(p))) for p in positions]
        return self

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for x, y, idx, v in self.loader:
            w = self.weights[torch.as_tensor(v) * self.n + torch.as_tensor(idx)]
            yield x, y, w, idx, v
