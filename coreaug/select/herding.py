"""Herding (Welling 2009; Chen, Welling & Smola 2010), per class, on penultimate embeddings.

Greedily pick points so that the running mean of the picked set tracks the class mean ``μ``: at
step ``t = 1, 2, …, k`` pick the unpicked point

    x_t = argmin_x ‖ μ − (x + Σ_{s<t} x_s) / t ‖

(the exemplar rule of Rebuffi et al. 2017, iCaRL, Alg. 4). With ``u = t μ − Σ_{s<t} x_s`` this is
``argmin_x ‖u − x‖² = argmin_x (‖x‖² − 2 xᵀu)``: one ``n_c × d`` product per step, ``O(k_c n_c d)``
per class, memory ``O(n_c d)``. Float64 inside; ties → lower position. Deterministic (no seed).
"""

from __future__ import annotations

from typing import Any

import torch

from coreaug.device import resolve_device
from coreaug.select.base import Selection, as_features
from coreaug.select.common import finish, split_budgets

__all__ = ["herding", "herding_subset", "running_mean_errors"]


def herding(x: torch.Tensor, k: int) -> tuple[list[int], list[float]]:
    """Herding order over the rows of ``x`` and the running-mean error ``‖μ − mean(S_t)‖`` after each pick."""
    n = int(x.shape[0])
    mu = x.mean(dim=0)
    sq = (x * x).sum(dim=1)
    total = torch.zeros_like(mu)
    taken = torch.zeros(n, dtype=torch.bool, device=x.device)
    order: list[int] = []
    errors: list[float] = []
    for t in range(1, k + 1):
        u = t * mu - total
        cost = sq - 2.0 * (x @ u)
        cost.masked_fill_(taken, float("inf"))
        j = int(torch.argmin(cost))  # first minimum → lower position
        order.append(j)
        taken[j] = True
        total += x[j]
        errors.append(float((mu - total / t).norm()))
    return order, errors


def running_mean_errors(x: torch.Tensor, order: list[int] | torch.Tensor) -> list[float]:
    """``‖mean(x) − mean(x[order[:t]])‖`` for ``t = 1..len(order)`` by direct recomputation (tests)."""
    x = x.double()
    mu = x.mean(dim=0)
    order = list(torch.as_tensor(order).tolist())
    return [float((mu - x[order[:t]].mean(dim=0)).norm()) for t in range(1, len(order) + 1)]


def herding_subset(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    budget_or_fraction: int | float | Any,
    *,
    num_classes: int | None = None,
    per_class: str = "proportional",
    device: str | torch.device | None = None,
) -> Selection:
    """Per-class herding on ``(n, d)`` embeddings; unit weights.

    ``info["mean_error"]`` holds each class's final ``‖μ_c − mean(S_c)‖``. Raises
    :class:`SelectionError` on NaN, bad labels or budgets.
    """
    x = as_features(embeddings, name="embeddings")
    y, classes, members, budgets = split_budgets(labels, x.shape[0], budget_or_fraction, num_classes, per_class)
    dev = x.device if device is None else resolve_device(device)
    picked, errs = [], []
    for mem, k in zip(members, budgets):
        if k == 0:
            errs.append(None)
            continue
        order, e = herding(x.index_select(0, mem.to(x.device)).to(dev, torch.float64), k)  # one class in float64
        picked.append(mem[torch.tensor(order, dtype=torch.long)])
        errs.append(e[-1])
    info = {"method": "herding", "per_class": per_class, "classes": classes, "budgets": budgets, "mean_error": errs}
    return finish(picked, None, info)
