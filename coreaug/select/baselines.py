"""Baseline selectors with the same per-class budgets as facility location: random and max-loss."""

from __future__ import annotations

from typing import Any

import torch

from coreaug.errors import SelectionError
from coreaug.select.base import Selection, as_labels, classes_and_members
from coreaug.select.budgets import PER_CLASS_MODES
from coreaug.select.facility_location import _budgets

__all__ = ["random_subset", "max_loss_subset"]


def _check_mode(per_class: str) -> None:
    if per_class not in PER_CLASS_MODES:
        raise SelectionError(f"unknown per_class mode {per_class!r}; choose one of: {', '.join(PER_CLASS_MODES)}")


def random_subset(
    labels: torch.Tensor,
    budget_or_fraction: int | float | Any,
    *,
    num_classes: int | None = None,
    per_class: str = "proportional",
    seed: int = 0,
) -> Selection:
    """Uniformly random subset, drawn independently in each class with the per-class budgets of
    :func:`~coreaug.select.facility_location` (``per_class="none"``: one uniform draw over all n).

    Deterministic for a given ``seed`` (a CPU ``torch.Generator``). Returns sorted ``indices`` and
    unit ``weights``. Raises :class:`SelectionError` on bad labels or budgets.
    """
    _check_mode(per_class)
    y = as_labels(labels, num_classes=num_classes)
    classes, members = classes_and_members(y, num_classes, per_class)
    budgets = _budgets(budget_or_fraction, members, classes, per_class, y.numel())
    gen = torch.Generator().manual_seed(int(seed))
    picked = [mem[torch.randperm(mem.numel(), generator=gen)[:k]] for mem, k in zip(members, budgets)]
    idx = torch.sort(torch.cat(picked)).values
    info = {"method": "random", "per_class": per_class, "classes": classes, "budgets": budgets}
    return Selection(indices=idx, weights=torch.ones(idx.numel(), dtype=torch.float32), info=info)


def max_loss_subset(
    losses: torch.Tensor,
    labels: torch.Tensor,
    budget_or_fraction: int | float | Any,
    *,
    num_classes: int | None = None,
    per_class: str = "proportional",
) -> Selection:
    """The highest-loss points of each class (per-class budgets as for facility location;
    ``per_class="none"``: the global top-B). Ties go to the lower position (stable sort).

    ``losses`` are per-example losses from the un-augmented eval pass
    (:attr:`coreaug.proxies.Proxies.losses`). Returns sorted ``indices`` and unit ``weights``.
    Raises :class:`SelectionError` on NaN losses, length mismatch, bad labels or budgets.
    """
    _check_mode(per_class)
    if not isinstance(losses, torch.Tensor):
        losses = torch.as_tensor(losses)
    if losses.ndim != 1 or not losses.is_floating_point():
        raise SelectionError(f"losses must be a 1-D float tensor, got shape {tuple(losses.shape)} {losses.dtype}")
    losses = losses.detach().cpu()
    if bool(torch.isnan(losses).any()):
        raise SelectionError("losses contain NaN values")
    y = as_labels(labels, n=losses.numel(), num_classes=num_classes)
    classes, members = classes_and_members(y, num_classes, per_class)
    budgets = _budgets(budget_or_fraction, members, classes, per_class, y.numel())
    picked = []
    for mem, k in zip(members, budgets):
        order = torch.sort(losses[mem], descending=True, stable=True).indices
        picked.append(mem[order[:k]])
    idx = torch.sort(torch.cat(picked)).values
    info = {"method": "maxloss", "per_class": per_class, "classes": classes, "budgets": budgets}
    return Selection(indices=idx, weights=torch.ones(idx.numel(), dtype=torch.float32), info=info)
