"""Uncertainty sampling (Coleman et al. 2020, "Selection via proxy", §3.1): keep the points the model
is least sure about, per class.

With ``p = softmax(z)`` of the un-augmented eval pass (:attr:`coreaug.proxies.Proxies.probs`):

* least confidence: ``1 − max_k p_k``;
* entropy:          ``−Σ_k p_k log p_k``  (``0 log 0 = 0``);
* margin:           ``p_(1) − p_(2)`` (top-1 minus top-2); the *smallest* margin is the most
  uncertain, so the score is ``1 − (p_(1) − p_(2))``.

Each class keeps its ``k_c`` highest-scoring points (ties → lower position). Weights are 1.
"""

from __future__ import annotations

from typing import Any

import torch

from coreaug.errors import SelectionError
from coreaug.select.base import Selection
from coreaug.select.common import as_probs, finish, split_budgets, top_per_class

__all__ = [
    "UNCERTAINTY_KINDS", "uncertainty_scores", "uncertainty_subset",
    "least_confidence_subset", "entropy_subset", "margin_subset",
]

UNCERTAINTY_KINDS: tuple[str, ...] = ("least_confidence", "entropy", "margin")


def uncertainty_scores(probs: torch.Tensor, kind: str = "entropy") -> torch.Tensor:
    """Per-example uncertainty (higher = more uncertain) of ``(n, C)`` probabilities, float64."""
    if kind not in UNCERTAINTY_KINDS:
        raise SelectionError(f"unknown uncertainty kind {kind!r}; choose one of: {', '.join(UNCERTAINTY_KINDS)}")
    p = as_probs(probs).clamp(0.0, 1.0)
    if kind == "least_confidence":
        return 1.0 - p.max(dim=1).values
    if kind == "entropy":
        return -(torch.special.xlogy(p, p)).sum(dim=1)
    top2 = torch.topk(p, 2, dim=1).values
    return 1.0 - (top2[:, 0] - top2[:, 1])


def uncertainty_subset(
    probs: torch.Tensor,
    labels: torch.Tensor,
    budget_or_fraction: int | float | Any,
    *,
    kind: str = "entropy",
    num_classes: int | None = None,
    per_class: str = "proportional",
) -> Selection:
    """The ``k_c`` most uncertain points of each class under ``kind`` (see the module docstring).

    Raises :class:`SelectionError` on non-probability input, NaN, bad labels or budgets.
    """
    scores = uncertainty_scores(probs, kind)
    y, classes, members, budgets = split_budgets(labels, scores.numel(), budget_or_fraction, num_classes, per_class)
    picked = top_per_class(scores, members, budgets)
    return finish(picked, None, {"method": kind, "per_class": per_class, "classes": classes, "budgets": budgets})


def least_confidence_subset(probs, labels, budget_or_fraction, *, num_classes=None, per_class="proportional") -> Selection:
    """:func:`uncertainty_subset` with ``kind="least_confidence"``."""
    return uncertainty_subset(probs, labels, budget_or_fraction, kind="least_confidence",
                              num_classes=num_classes, per_class=per_class)


def entropy_subset(probs, labels, budget_or_fraction, *, num_classes=None, per_class="proportional") -> Selection:
    """:func:`uncertainty_subset` with ``kind="entropy"``."""
    return uncertainty_subset(probs, labels, budget_or_fraction, kind="entropy",
                              num_classes=num_classes, per_class=per_class)


def margin_subset(probs, labels, budget_or_fraction, *, num_classes=None, per_class="proportional") -> Selection:
    """:func:`uncertainty_subset` with ``kind="margin"`` (smallest top-1 − top-2 margin first)."""
    return uncertainty_subset(probs, labels, budget_or_fraction, kind="margin",
                              num_classes=num_classes, per_class=per_class)
