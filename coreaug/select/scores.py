"""Data-pruning scores of Paul et al. (2021), "Deep learning on a data diet": EL2N and GraNd.

* **EL2N**: ``‖p − e_y‖₂`` with ``p = softmax(z)`` (the paper averages over a few early-training
  models; here one model, the current one, as the rest of this project selects with).
* **GraNd**: the expected norm of the per-example loss gradient ``E‖∇_θ ℓ(x, y)‖``. This
  implementation uses the **last-layer closed form** (not the full network gradient): for logits
  ``z = W h + b`` the cross-entropy gradient w.r.t. ``(W, b)`` is ``((p − e_y) hᵀ, p − e_y)``, whose
  Frobenius norm is exactly ``‖p − e_y‖ · sqrt(‖h‖² + 1)``. One model, so the "expectation" is over
  a single draw. The proxy pass provides it as :attr:`coreaug.proxies.Proxies.grad_norms`.

Both keep the ``k_c`` *highest*-scoring points of each class (ties → lower position); weights 1.
"""

from __future__ import annotations

from typing import Any

import torch

from coreaug.errors import SelectionError
from coreaug.select.base import Selection, as_features, as_labels
from coreaug.select.common import as_probs, as_scores, finish, one_hot, split_budgets, top_per_class

__all__ = ["el2n_scores", "grand_scores", "el2n_subset", "grand_subset", "score_subset"]


def el2n_scores(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``‖softmax − onehot(y)‖₂`` per example (float64)."""
    y = as_labels(labels, n=int(probs.shape[0]) if hasattr(probs, "shape") else None)
    p = as_probs(probs, y)
    return (p - one_hot(y, p.shape[1])).norm(dim=1)


def grand_scores(probs: torch.Tensor, labels: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """Last-layer GraNd: ``‖p − e_y‖ · sqrt(‖h‖² + 1)`` = the norm of the CE gradient w.r.t. the final
    linear layer's weight and bias (``h`` = its input, the penultimate embedding). Float64."""
    e = as_features(embeddings, name="embeddings")
    if int(e.shape[0]) != int(probs.shape[0]):
        raise SelectionError(f"embeddings have {e.shape[0]} rows but probs have {probs.shape[0]}; lengths must match")
    h2 = e.to("cpu", torch.float64).pow(2).sum(dim=1)
    return el2n_scores(probs, labels) * torch.sqrt(h2 + 1.0)


def score_subset(
    scores: torch.Tensor,
    labels: torch.Tensor,
    budget_or_fraction: int | float | Any,
    *,
    num_classes: int | None = None,
    per_class: str = "proportional",
    method: str = "scores",
) -> Selection:
    """The ``k_c`` highest ``scores`` of each class (ties → lower position), unit weights."""
    s = as_scores(scores)
    y, classes, members, budgets = split_budgets(labels, s.numel(), budget_or_fraction, num_classes, per_class)
    picked = top_per_class(s, members, budgets)
    return finish(picked, None, {"method": method, "per_class": per_class, "classes": classes, "budgets": budgets})


def el2n_subset(
    probs: torch.Tensor,
    labels: torch.Tensor,
    budget_or_fraction: int | float | Any,
    *,
    num_classes: int | None = None,
    per_class: str = "proportional",
) -> Selection:
    """Highest-EL2N points of each class (Paul et al. 2021)."""
    return score_subset(el2n_scores(probs, labels), labels, budget_or_fraction, num_classes=num_classes,
                        per_class=per_class, method="el2n")


def grand_subset(
    grad_norms: torch.Tensor,
    labels: torch.Tensor,
    budget_or_fraction: int | float | Any,
    *,
    num_classes: int | None = None,
    per_class: str = "proportional",
) -> Selection:
    """Highest-GraNd points of each class, from per-example gradient norms (e.g. :func:`grand_scores`
    or :attr:`coreaug.proxies.Proxies.grad_norms`, the last-layer closed form)."""
    s = as_scores(grad_norms, name="grad_norms")
    if bool((s < 0).any()):
        raise SelectionError("grad_norms must be non-negative gradient norms")
    return score_subset(s, labels, budget_or_fraction, num_classes=num_classes, per_class=per_class, method="grand")
