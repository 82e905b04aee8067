"""CRAIG per mini-batch ("CRAIG-PB"; Mirzasoleiman, Bilmes & Leskovec 2020, and the mini-batch
variant of its official code / CORDS' ``selection_type="PerBatch"``), per class; returns weights.

Per class ``c``: shuffle its points with a seeded generator and cut them into ``M = ⌈n_c / B⌉``
mini-batches of as-equal-as-possible sizes (``B = batch_size``, or ``⌈k_c / 2⌉`` when the class's
budget ``k_c`` is below ``2B``, so that small budgets are not rounded up to a whole ``B``-batch); represent each mini-batch by the
**average** gradient proxy of its points; run facility location (the project's lazy greedy,
:func:`~coreaug.select.facility_location.greedy_facility_location`) over the ``M`` batch averages
to choose ``m_c = clamp(round(k_c / B), 1, M)`` mini-batches; return every point of the chosen
mini-batches.

Weights: each mini-batch ``β`` is assigned to its most similar chosen mini-batch ``σ(β)`` (ties → the
earlier pick); a chosen mini-batch ``σ`` stands for the points of all batches assigned to it, so each
of its points gets weight ``Σ_{β: σ(β)=σ} |β| / |σ|`` (= the cluster size in mini-batches when all
batches have equal size). The weights of a class sum exactly to ``n_c``.

The subset size is the number of points in the chosen mini-batches: within ``B/2`` of ``k_c``
per class (whole mini-batches), reported in ``info["budgets"]`` (requested) and ``info["sizes"]``.
"""

from __future__ import annotations

from typing import Any

import torch

from coreaug.errors import SelectionError
from coreaug.select.base import Selection, as_features
from coreaug.select.common import finish, split_budgets
from coreaug.select.facility_location import GREEDY_METHODS, greedy_facility_location
from coreaug.select.similarity import SIMILARITIES, SimilarityKernel

__all__ = ["minibatches", "craig_pb_subset"]


def minibatches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A seeded random partition of ``range(n)`` into ``⌈n / batch_size⌉`` batches whose sizes differ by ≤ 1."""
    m = -(-n // batch_size)
    return list(torch.tensor_split(torch.randperm(n, generator=generator), m))


def craig_pb_subset(
    features: torch.Tensor,
    labels: torch.Tensor,
    budget_or_fraction: int | float | Any,
    *,
    batch_size: int = 32,
    similarity: str = "exp",
    greedy: str = "lazy",
    num_classes: int | None = None,
    per_class: str = "proportional",
    seed: int = 0,
) -> Selection:
    """Per-class CRAIG-PB on ``(n, d)`` gradient proxies (see the module docstring).

    Raises :class:`SelectionError` on NaN, bad labels/budgets, ``batch_size < 1``, an unknown
    similarity or greedy method.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SelectionError(f"CRAIG-PB batch_size must be a positive int, got {batch_size!r}")
    if similarity not in SIMILARITIES:
        raise SelectionError(f"unknown similarity {similarity!r}; choose one of: {', '.join(SIMILARITIES)}")
    if greedy not in GREEDY_METHODS:
        raise SelectionError(f"unknown greedy method {greedy!r}; choose one of: {', '.join(GREEDY_METHODS)}")
    x = as_features(features)
    y, classes, members, budgets = split_budgets(labels, x.shape[0], budget_or_fraction, num_classes, per_class)
    gen = torch.Generator().manual_seed(int(seed))
    picked, weights, sizes, chosen, used_b = [], [], [], [], []
    for mem, k in zip(members, budgets):
        # A class whose budget is under two mini-batches uses smaller ones (⌈k_c/2⌉ points), so its
        # subset stays within the budget instead of being rounded up to one whole B-sized batch.
        b_c = min(batch_size, max(1, -(-k // 2)))
        batches = minibatches(mem.numel(), b_c, gen)  # drawn for every class: stable streams
        if k == 0:
            sizes.append(0), chosen.append(0)
            continue
        g = x.index_select(0, mem.to(x.device)).to("cpu", torch.float64)
        means = torch.stack([g[bt].mean(dim=0) for bt in batches])
        bsz = torch.tensor([bt.numel() for bt in batches], dtype=torch.float64)
        m = min(len(batches), max(1, int(round(k / b_c))))
        res = greedy_facility_location(means, m, greedy=greedy, similarity=similarity, generator=gen)
        order = res["order"]
        assign, _ = SimilarityKernel(means, similarity).assign(order)  # batch → position in order
        cover = torch.zeros(m, dtype=torch.float64).index_add_(0, assign, bsz)  # points each pick stands for
        for t, bi in enumerate(order.tolist()):
            pts = batches[bi]
            picked.append(mem[pts])
            weights.append(torch.full((pts.numel(),), float(cover[t] / bsz[bi]), dtype=torch.float64))
        sizes.append(int(sum(batches[bi].numel() for bi in order.tolist())))
        chosen.append(m)
        used_b.append(b_c)
    info = {"method": "craig_pb", "batch_size": batch_size, "similarity": similarity, "greedy": greedy,
            "per_class": per_class, "classes": classes, "budgets": budgets, "sizes": sizes, "batches_chosen": chosen,
            "class_batch_sizes": used_b}
    return finish(picked, weights, info)
