"""Subset selection for one reselection step: proxy pass → selector → (S, γ) (docs/paper-notes.md §3).

Every R epochs from epoch 0 the model is run once, in eval mode without gradients, over all n
training points with the **test-time transform** (:func:`coreaug.proxies.compute_proxies`) — or,
with ``proxy_pool = F < 1``, over a fresh stratified pool of F·n of them; the selector picks S
from those proxies on the training device. The random main subset of regime (c) is redrawn at the
same epochs. Under DDP the pass is sharded across ranks and the per-class greedy split across them
(:func:`select_subset`); every rank ends with the same (S, γ).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from coreaug.select.base import resolve_total_budget as resolve_budget_total
from coreaug.train.config import TrainConfig
from coreaug.train.distributed import DistContext, all_gather_object, gather_strided
from coreaug.train.epoch_data import derive_seed


@dataclass
class SubsetState:
    """The current selection: S (training-set indices), γ, and regime (c)'s random main subset."""

    indices: torch.Tensor
    weights: torch.Tensor
    random_main: torch.Tensor | None
    epoch: int  # epoch at which it was selected

    def to_dict(self) -> dict:
        return {
            "indices": self.indices.cpu(), "weights": self.weights.cpu(),
            "random_main": None if self.random_main is None else self.random_main.cpu(), "epoch": self.epoch,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "SubsetState":
        return cls(d["indices"], d["weights"], d["random_main"], int(d["epoch"]))


def needs_reselection(epoch: int, every: int) -> bool:
    """True at epochs 0, R, 2R, … (docs/paper-notes.md §5.2)."""
    return epoch % every == 0


def class_budget_plan(labels: torch.Tensor, fraction: float, per_class: str) -> tuple[list[int], list[int], list[int]]:
    """``(classes, sizes, budgets)`` over the *whole* training set: the budgets of
    :func:`coreaug.select.facility_location` for ``B = max(1, floor(fraction·n))`` (docs/paper-notes.md §3.3).

    With ``per_class="none"`` the budgets are proportional shares (``ceil(B·n_c/n)``, used only to
    size the proxy pool) and the selection itself gets the single total ``B``.
    """
    from coreaug.select.base import classes_and_members, resolve_total_budget
    from coreaug.select.budgets import class_budgets

    n = int(labels.numel())
    total = resolve_total_budget(float(fraction), n)
    classes, members = classes_and_members(labels, None, "equal" if per_class == "none" else per_class)
    sizes = [int(mem.numel()) for mem in members]
    if per_class == "none":
        return classes, sizes, [min(sz, -(-total * sz // n)) for sz in sizes]
    return classes, sizes, class_budgets(sizes, total, per_class)


def stratified_pool(labels: torch.Tensor, pool_fraction: float, budgets: Sequence[int], *, seed: int) -> torch.Tensor:
    """Sorted positions of a stratified random pool: from each class ``c`` (of ``n_c`` points, in
    ascending label order, ``budgets[c]`` picks) ``m_c = min(n_c, max(budget_c, round(F·n_c)))``
    points uniformly without replacement, so the pool always holds at least each class's budget.
    ``F = 1`` returns ``arange(n)`` without drawing anything.
    """
    n = int(labels.numel())
    if pool_fraction >= 1.0:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(int(seed) % 2**63)
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels)
    members = torch.split(order, counts.tolist())
    parts = []
    for mem in (m for m in members if m.numel()):
        k = budgets[len(parts)]
        m = min(mem.numel(), max(k, int(math.floor(pool_fraction * mem.numel() + 0.5)), 1))
        parts.append(mem[torch.randperm(mem.numel(), generator=gen)[:m]])
    return torch.sort(torch.cat(parts)).values


def split_classes(sizes: Sequence[int], world_size: int) -> list[int]:
    """The rank that runs the greedy of each class: longest-processing-time-first on ``n_c²`` (the
    cost of a class's similarity matrix), ties to the lower rank. Deterministic on every rank."""
    load = [0] * world_size
    owner = [0] * len(sizes)
    for c in sorted(range(len(sizes)), key=lambda c: (-sizes[c], c)):
        r = min(range(world_size), key=lambda r: (load[r], r))
        owner[c] = r
        load[r] += sizes[c] ** 2
    return owner


def pool_proxies(cfg: TrainConfig, model: nn.Module, view: Dataset, pool: torch.Tensor, *, device: torch.device,
                 ctx: DistContext | None = None, needs: frozenset[str] = frozenset()):
    """Proxies of the pool positions, in pool order. Under DDP each rank runs the pass on its strided
    shard ``pool[rank::world]`` (no duplicates) and the shards are all-gathered, so every rank holds
    all of them (features and embeddings on ``device``, labels/losses/indices/probs/grad norms on the
    CPU). ``needs``: the selector's needs (:func:`coreaug.proxies.compute_proxies`)."""
    from coreaug.device import resolve_num_workers
    from coreaug.proxies import Proxies, compute_proxies

    world, rank = (ctx.world_size, ctx.rank) if ctx is not None and ctx.enabled else (1, 0)
    kw = dict(kind=cfg.proxy, batch_size=cfg.eval_batch_size, device=device,
              num_workers=resolve_num_workers(cfg.num_workers, device), out_device=device, needs=needs)
    if world == 1:
        return compute_proxies(model, view, indices=None if pool.numel() == len(view) else pool, **kw)
    mine = pool[rank::world]
    local = compute_proxies(model, view, indices=mine, **kw)
    # features, losses and the optional outputs travel together as one (m_r, D+1+…) float32 tensor
    extra = [k for k in ("probs", "embeddings", "grad_norms") if getattr(local, k) is not None]
    cols = [local.features, local.losses.to(device)[:, None]]
    cols += [getattr(local, k).to(device).reshape(local.features.shape[0], -1) for k in extra]
    widths = [c.shape[1] for c in cols]
    packed = gather_strided(torch.cat(cols, dim=1), pool.numel(), ctx)
    parts = torch.split(packed, widths, dim=1)
    labels = torch.as_tensor(view.targets, dtype=torch.long)[pool]
    out = {k: (v.contiguous() if k == "embeddings" else v.cpu().reshape(-1) if k == "grad_norms" else v.cpu())
           for k, v in zip(extra, parts[2:])}
    return Proxies(features=parts[0].contiguous(), labels=labels, losses=parts[1][:, 0].cpu(), indices=pool.clone(),
                   **out)


def select_subset(
    cfg: TrainConfig,
    model: nn.Module,
    eval_train_view: Dataset,
    *,
    epoch: int,
    device: torch.device,
    ctx: DistContext | None = None,
    history=None,
) -> SubsetState:
    """Run the proxy pass and the selector for ``epoch``.

    The registered selector (:mod:`coreaug.select.registry`) says what it needs: the pass computes
    exactly that union (skipped for ``random`` and for history-only selectors such as ``forgetting``,
    which reads ``history``, a :class:`~coreaug.select.ForgettingTracker` indexed by dataset index).
    Weighted selectors' weights (coreset, GradMatch, CRAIG-PB) are normalised to mean 1 (the
    coreset's γ convention, rescaled to the class like the coreset's under a proxy pool); the
    others weigh 1. Under DDP the coreset's classes are split across ranks; every other selector
    runs on every rank on the gathered proxies (deterministic, so all ranks agree).

    ``cfg.proxy_pool = F < 1``: the pass runs on a fresh stratified pool (:func:`stratified_pool`,
    seeded by ``(seed, epoch)``) and S is selected from it with the budgets of the *whole* set
    (``B = floor(fraction·n)``, per-class as configured). A coreset element's weight is its cluster
    size within the pool rescaled to its class: ``γ_j = |{i ∈ pool_c : j nearest to i}| · n_c / m_c``
    (``n/m`` with ``per_class="none"``), then normalised to mean 1 over S as usual; ``F = 1`` is
    exactly the paper's protocol.

    Under DDP (``ctx`` enabled) every rank calls this: the pass is sharded (:func:`pool_proxies`),
    classes are split across ranks for the greedy (:func:`split_classes`), the per-class results are
    all-gathered, and every rank returns the same (S, γ) — equal to the single-process selection.
    """
    from coreaug.select import get_selector, select

    spec = get_selector(cfg.selector)
    n = len(eval_train_view)
    seed = derive_seed(cfg.seed, epoch, 1)
    labels = torch.as_tensor(eval_train_view.targets, dtype=torch.long)
    kw = {"per_class": cfg.per_class}
    if not (spec.needs - {"history"}):
        # Random / history-based selection needs no forward pass; positions are training-set indices.
        sel = select(spec.name, labels=labels, fraction=cfg.fraction, seed=seed % 2**31, history=history, **kw)
        indices = sel.indices.cpu().long()
        weights = torch.ones(indices.numel())
    else:
        classes, sizes, budgets = class_budget_plan(labels, cfg.fraction, cfg.per_class)
        pool = stratified_pool(labels, cfg.proxy_pool, budgets, seed=derive_seed(cfg.seed, epoch, 4))
        proxies = pool_proxies(cfg, model, eval_train_view, pool, device=device, ctx=ctx, needs=spec.needs)
        positions, weights = _select_from_pool(cfg, proxies, classes, sizes, budgets, seed=seed % 2**31,
                                               device=device, ctx=ctx, history=history)
        indices = proxies.indices[positions]  # pool positions → training-set indices (ascending)
    random_main = None
    if cfg.method == "random+aug-subset":
        g = torch.Generator().manual_seed(derive_seed(cfg.seed, epoch, 2) % 2**63)
        random_main = torch.randperm(n, generator=g)[: indices.numel()].sort().values
    return SubsetState(indices, weights, random_main, epoch)


def _select_from_pool(cfg: TrainConfig, proxies, classes: list[int], sizes: list[int], budgets: list[int], *,
                      seed: int, device: torch.device, ctx: DistContext | None,
                      history=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted pool positions of S and their weights (see :func:`select_subset`)."""
    from coreaug.select import get_selector, select

    y = proxies.labels
    m = int(y.numel())
    # the budgets of the whole set (a pool only changes where they are picked from)
    fraction = resolve_budget_total(cfg.fraction, int(sum(sizes))) if cfg.per_class == "none" else list(budgets)
    spec = get_selector(cfg.selector)
    if spec.name != "coreset":  # every rank runs them on the gathered proxies (deterministic)
        sel = select(spec.name, features=proxies.features, labels=y, losses=proxies.losses, probs=proxies.probs,
                     embeddings=proxies.embeddings, grad_norms=proxies.grad_norms, history=history,
                     fraction=fraction, seed=seed, per_class=cfg.per_class)
        if not spec.weighted:
            return sel.indices.cpu().long(), torch.ones(sel.indices.numel())
        return _pool_weights(sel.indices.cpu().long(), sel.weights.cpu().float(), y, classes, sizes, cfg.per_class)
    world, rank = (ctx.world_size, ctx.rank) if ctx is not None and ctx.enabled else (1, 0)
    owner = [0] if cfg.per_class == "none" else split_classes([int((y == c).sum()) for c in classes], world)
    mine = [i for i, r in enumerate(owner) if r == rank]
    if world == 1:
        rows = None
    else:
        keep = torch.isin(y, torch.tensor([classes[i] for i in mine], dtype=torch.long)) \
            if cfg.per_class != "none" else torch.ones(m, dtype=torch.bool)
        rows = keep.nonzero().flatten() if mine else torch.empty(0, dtype=torch.long)
    part_pos, part_w = torch.empty(0, dtype=torch.long), torch.empty(0)
    if mine:
        f, yy = (proxies.features, y) if rows is None else (proxies.features[rows.to(proxies.features.device)], y[rows])
        b = fraction if cfg.per_class == "none" else [budgets[i] for i in mine]
        sel = select("coreset", features=f, labels=yy, fraction=b, seed=seed, per_class=cfg.per_class,
                     normalize_weights=False, device=device)
        part_pos = sel.indices.cpu().long() if rows is None else rows[sel.indices.cpu().long()]
        part_w = sel.weights.cpu().float()
    if world > 1:
        parts = all_gather_object((part_pos, part_w), ctx)
        part_pos = torch.cat([p for p, _ in parts])
        part_w = torch.cat([w for _, w in parts])
    order = torch.argsort(part_pos)
    return _pool_weights(part_pos[order], part_w[order], y, classes, sizes, cfg.per_class)


def _pool_weights(pos: torch.Tensor, w: torch.Tensor, y: torch.Tensor, classes: list[int], sizes: list[int],
                  per_class: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights of a weighted selector on the pool → class scale, then normalised to mean 1."""
    m = int(y.numel())
    if m < int(sum(sizes)):  # a proxy pool: cluster sizes within the pool → class scale
        if per_class == "none":
            w = w * (sum(sizes) / m)
        else:
            pool_counts = torch.bincount(y, minlength=max(classes) + 1).double()
            full_counts = torch.zeros_like(pool_counts)
            full_counts[torch.tensor(classes)] = torch.tensor(sizes, dtype=torch.float64)
            w = (w.double() * (full_counts / pool_counts.clamp_min(1))[y[pos]]).float()
    w = w * (w.numel() / w.sum())  # γ normalised to mean 1 over the coreset (docs/paper-notes.md §3.5)
    return pos, w


class Timer:
    """Wall-clock timer that synchronises CUDA so GPU work is counted."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self) -> "Timer":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.elapsed = time.perf_counter() - self.start
