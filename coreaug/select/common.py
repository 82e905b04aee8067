"""Helpers shared by the score-based and per-class selectors of issue 12.

Every selector here follows the same pattern as :func:`~coreaug.select.facility_location`:
validate the inputs, split the points by class (:func:`~coreaug.select.base.classes_and_members`),
turn ``budget_or_fraction`` into per-class budgets (:mod:`coreaug.select.budgets`), select inside
each class, and return a :class:`~coreaug.select.base.Selection` with sorted positions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from coreaug.errors import SelectionError
from coreaug.select.base import Selection, all_finite, as_labels, classes_and_members, resolve_total_budget
from coreaug.select.budgets import PER_CLASS_MODES, check_explicit_budgets, class_budgets

__all__ = [
    "check_mode", "split_budgets", "as_scores", "as_probs", "top_per_class", "finish", "one_hot",
]


def check_mode(per_class: str) -> None:
    """Raise :class:`SelectionError` for an unknown ``per_class`` mode."""
    if per_class not in PER_CLASS_MODES:
        raise SelectionError(f"unknown per_class mode {per_class!r}; choose one of: {', '.join(PER_CLASS_MODES)}")


def split_budgets(
    labels: Any, n: int, budget_or_fraction: Any, num_classes: int | None, per_class: str
) -> tuple[torch.Tensor, list[int], list[torch.Tensor], list[int]]:
    """Validated labels, the classes, each class's member positions (ascending) and its budget.

    Raises :class:`SelectionError` on bad labels, an empty class (with ``num_classes``), a fraction
    outside (0, 1], a budget larger than ``n`` or an explicit per-class budget larger than its class.
    """
    check_mode(per_class)
    y = as_labels(labels, n=n, num_classes=num_classes)
    classes, members = classes_and_members(y, num_classes, per_class)
    sizes = [int(m.numel()) for m in members]
    total = resolve_total_budget(budget_or_fraction, y.numel())
    if isinstance(total, list):
        budgets = check_explicit_budgets(total, sizes, classes)
    else:
        budgets = class_budgets(sizes, total, per_class)
    return y, classes, members, budgets


def _tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise SelectionError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    return x.detach()


def as_scores(scores: Any, *, name: str = "scores") -> torch.Tensor:
    """A finite 1-D float64 CPU tensor (NaN/Inf → :class:`SelectionError`)."""
    s = _tensor(scores, name)
    if s.ndim != 1 or s.numel() == 0:
        raise SelectionError(f"{name} must be a non-empty 1-D tensor, got shape {tuple(s.shape)}")
    if s.dtype == torch.bool or s.is_complex():
        raise SelectionError(f"{name} must be real numbers, got dtype {s.dtype}")
    s = s.to("cpu", torch.float64)
    if not all_finite(s):
        raise SelectionError(f"{name} contain {int((~torch.isfinite(s)).sum())} NaN/Inf value(s); check the proxy pass")
    return s


def as_probs(probs: Any, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Validate ``(n, C)`` class probabilities (finite, in [0, 1], rows summing to 1 within 1e-3) → float64 CPU.

    Logits instead of probabilities are the usual mistake; the message says so.
    """
    p = _tensor(probs, "probs")
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] < 2:
        raise SelectionError(f"probs must be (n, C) with C >= 2 and n >= 1, got shape {tuple(p.shape)}")
    p = p.to("cpu", torch.float64)
    if not all_finite(p):
        bad = int((~torch.isfinite(p)).any(dim=1).sum())
        raise SelectionError(f"probs contain NaN or Inf values in {bad} row(s); check the model/proxy pass")
    if bool((p < -1e-6).any()) or bool((p - 1.0 > 1e-6).any()) or bool(((p.sum(dim=1) - 1.0).abs() > 1e-3).any()):
        raise SelectionError("probs must be softmax probabilities (rows in [0, 1] summing to 1), not logits")
    if labels is not None and int(labels.max()) >= p.shape[1]:
        raise SelectionError(f"label {int(labels.max())} is out of range for probs with {p.shape[1]} classes")
    return p


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``(n, C)`` one-hot rows ``e_y``."""
    e = torch.zeros(labels.numel(), num_classes, dtype=dtype)
    e[torch.arange(labels.numel()), labels] = 1.0
    return e


def top_per_class(scores: torch.Tensor, members: list[torch.Tensor], budgets: list[int],
                  tiebreak: torch.Tensor | None = None) -> list[torch.Tensor]:
    """The ``k_c`` highest-scoring members of each class.

    Ties go to the lower position (members are ascending and the sort is stable), or, with
    ``tiebreak`` (a permutation rank per position), to the lower ``tiebreak`` value.
    """
    picked = []
    for mem, k in zip(members, budgets):
        if k == 0:
            continue
        s = scores[mem]
        if tiebreak is None:
            order = torch.sort(s, descending=True, stable=True).indices
        else:
            # primary: score descending; secondary: tiebreak rank ascending (two stable sorts)
            by_rank = torch.argsort(tiebreak[mem], stable=True)
            order = by_rank[torch.sort(s[by_rank], descending=True, stable=True).indices]
        picked.append(mem[order[:k]])
    return picked


def finish(picked: list[torch.Tensor], weights: list[torch.Tensor] | None, info: dict[str, Any]) -> Selection:
    """Concatenate per-class picks (and weights; ``None`` → ones) into a Selection sorted by position."""
    idx = torch.cat(picked) if picked else torch.empty(0, dtype=torch.long)
    if weights is None:
        w = torch.ones(idx.numel(), dtype=torch.float32)
    else:
        w = torch.cat(weights).to(torch.float32) if weights else torch.empty(0, dtype=torch.float32)
    if torch.unique(idx).numel() != idx.numel():  # pragma: no cover - a bug, not a user error
        raise SelectionError("internal error: a selector picked a point twice")
    perm = torch.argsort(idx)
    return Selection(indices=idx[perm].contiguous(), weights=w[perm].contiguous(), info=info)
