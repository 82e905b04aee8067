"""k-center greedy (Sener & Savarese 2018, "Active learning for convolutional neural networks: a
core-set approach", Algorithm 1), per class, on penultimate embeddings.

Farthest-first traversal (Gonzalez 1985): start from one centre, then repeatedly add the point
whose distance to its nearest chosen centre, ``δ_i = min_{j∈S} ‖h_i − h_j‖``, is largest. The final
covering radius ``max_i δ_i`` is within a factor 2 of the optimal k-center radius. Sener & Savarese
start from the labelled pool; with no pool here the first centre is a seeded uniform draw from the
class (so the result is deterministic under ``seed``). Ties → lower position.

Memory: only the ``n_c`` vector ``δ`` and the distances from the newest centre are held; those are
computed ``chunk_rows`` rows at a time (``‖a‖² + ‖b‖² − 2a·b``), never an ``n × n`` matrix. Time
``O(k_c · n_c · d)`` per class.
"""

from __future__ import annotations

from typing import Any

import torch

from coreaug.device import resolve_device
from coreaug.select.base import Selection, as_features
from coreaug.select.common import finish, split_budgets

__all__ = ["kcenter_greedy", "kcenter_subset", "covering_radius"]


def _dist_to(x: torch.Tensor, sq: torch.Tensor, c: int, chunk_rows: int) -> torch.Tensor:
    """Euclidean distances from row ``c`` of ``x`` to every row, ``chunk_rows`` rows at a time."""
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    xc = x[c]
    for a in range(0, x.shape[0], chunk_rows):
        b = min(x.shape[0], a + chunk_rows)
        out[a:b] = (sq[a:b] + sq[c] - 2.0 * (x[a:b] @ xc)).clamp_min_(0.0).sqrt_()
    out[c] = 0.0  # exact self-distance
    return out


def kcenter_greedy(x: torch.Tensor, k: int, *, first: int = 0, chunk_rows: int = 65536) -> tuple[list[int], float]:
    """Farthest-first traversal of the rows of ``x`` from row ``first``: ``(order, covering radius)``."""
    n = int(x.shape[0])
    sq = (x * x).sum(dim=1)
    delta = _dist_to(x, sq, first, chunk_rows)
    order = [int(first)]
    for _ in range(k - 1):
        j = int(torch.argmax(delta))  # first maximum → lower position on ties
        order.append(j)
        torch.minimum(delta, _dist_to(x, sq, j, chunk_rows), out=delta)
    return order, float(delta.max()) if n else 0.0


def covering_radius(x: torch.Tensor, centres: torch.Tensor) -> float:
    """``max_i min_{j ∈ centres} ‖x_i − x_j‖`` (direct formula; for tests and diagnostics)."""
    return float(torch.cdist(x.double(), x.double()[centres]).min(dim=1).values.max())


def kcenter_subset(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    budget_or_fraction: int | float | Any,
    *,
    num_classes: int | None = None,
    per_class: str = "proportional",
    seed: int = 0,
    device: str | torch.device | None = None,
    chunk_rows: int = 65536,
    dtype: torch.dtype = torch.float32,
) -> Selection:
    """Per-class k-center greedy on ``(n, d)`` embeddings; unit weights.

    ``info["radius"]`` holds each class's covering radius. Raises :class:`SelectionError` on NaN,
    bad labels or budgets.
    """
    x = as_features(embeddings, name="embeddings")
    y, classes, members, budgets = split_budgets(labels, x.shape[0], budget_or_fraction, num_classes, per_class)
    dev = x.device if device is None else resolve_device(device)
    x = x.to(dev, dtype)
    gen = torch.Generator().manual_seed(int(seed))
    picked, radii = [], []
    for mem, k in zip(members, budgets):
        first = int(torch.randint(mem.numel(), (1,), generator=gen))  # drawn for every class: stable streams
        if k == 0:
            radii.append(None)
            continue
        order, radius = kcenter_greedy(x.index_select(0, mem.to(dev)), k, first=first, chunk_rows=max(1, chunk_rows))
        picked.append(mem[torch.tensor(order, dtype=torch.long)])
        radii.append(radius)
    info = {"method": "kcenter", "per_class": per_class, "classes": classes, "budgets": budgets, "radius": radii}
    return finish(picked, None, info)
