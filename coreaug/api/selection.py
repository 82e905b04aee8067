"""The one selection pipeline: proxy pass → selector → **dataset indices** and loss weights.

Every caller goes through :func:`select_from_view`: the public :func:`select_coreset`, the
:class:`~coreaug.api.AugmentedCoreset` schedule, ``coreaug train`` (through the schedule),
``coreaug select`` and the training diagnostics. It runs the model once in eval mode without
gradients over the training points seen through an un-augmented view (docs/paper-notes.md §3.1),
or over a fresh stratified pool of ``F·n`` of them (``proxy_pool = F < 1``), runs the registered
selector on what it needs, and maps pool positions back to dataset indices. Weighted selectors'
weights (coreset cluster sizes, GradMatch, CRAIG-PB) are rescaled from the pool to the class and
normalised to mean 1 here, once (§3.5); the others weigh 1.

Under DDP (a :class:`~coreaug.distributed.DistContext` that is enabled) every rank calls it: the
pass is sharded, the coreset's classes are split across ranks for the greedy, the parts are
all-gathered, and every rank returns the same selection, equal to the single-process one.

Cost: one no-grad forward over the pool (≈ 1.1x a bare forward, ``benchmarks/bench_proxy.py``) plus
the selector (facility location ≈ 1.2x building the per-class similarity matrices,
``benchmarks/bench_select.py``); the mapping and weighting are O(n).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from coreaug.distributed import DistContext, all_gather_object, gather_strided
from coreaug.errors import ConfigError
from coreaug.runtime import derive_seed

__all__ = [
    "CoresetSelection", "select_coreset", "select_from_view", "class_budget_plan", "stratified_pool", "split_classes",
    "PER_CLASS_DEFAULT",
]

#: Per-class budget mode of the public API and ``coreaug train`` (ceil(B/C) per class, the official code's).
PER_CLASS_DEFAULT = "equal-ceil"

# purposes mixed into derive_seed(seed, epoch, purpose): one independent stream each
SEED_SELECTOR, SEED_RANDOM_MAIN, SEED_POOL = 1, 2, 4


@dataclass(frozen=True)
class CoresetSelection:
    """One selection, in the index space of the dataset it was made on.

    Attributes:
        indices: ``int64`` CPU tensor of **dataset indices** (``dataset[i]`` for ``i`` in it), ascending, unique.
        weights: ``float32`` CPU tensor, one loss weight per index (mean 1 for weighted selectors, else ones).
        epoch: the epoch it was selected at (0 for a one-shot selection).
        seconds: wall-clock of the proxy pass and the selector (CUDA synchronised).
        info: the selector's diagnostics (``method``, ``budgets``, ``objective`` …).
        forward_passes: examples the proxy pass ran forward (the pool's size; 0 without a pass).
    """

    indices: torch.Tensor
    weights: torch.Tensor
    epoch: int = 0
    seconds: float = 0.0
    info: Mapping[str, Any] = field(default_factory=dict, compare=False)
    forward_passes: int = 0

    def __len__(self) -> int:
        return int(self.indices.numel())


def class_budget_plan(labels: torch.Tensor, fraction: float | int, per_class: str) -> tuple[list[int], list[int], list[int]]:
    """``(classes, sizes, budgets)`` over the *whole* training set: the budgets of
    :func:`coreaug.select.facility_location` for ``B = max(1, floor(fraction·n))`` (docs/paper-notes.md §3.3).

    With ``per_class="none"`` the budgets are proportional shares (``ceil(B·n_c/n)``, used only to
    size the proxy pool) and the selection itself gets the single total ``B``.
    """
    from coreaug.select.base import classes_and_members, resolve_total_budget
    from coreaug.select.budgets import class_budgets

    n = int(labels.numel())
    total = resolve_total_budget(fraction, n)  # an int is an absolute total
    classes, members = classes_and_members(labels, None, "equal" if per_class == "none" else per_class)
    sizes = [int(mem.numel()) for mem in members]
    if per_class == "none":
        return classes, sizes, [min(sz, -(-total * sz // n)) for sz in sizes]
    return classes, sizes, class_budgets(sizes, total, per_class)


def stratified_pool(labels: torch.Tensor, pool_fraction: float, budgets: Sequence[int], *, seed: int) -> torch.Tensor:
    """Sorted positions of a stratified random pool: from each class ``c`` (of ``n_c`` points, in
    ascending label order, ``budgets[c]`` picks) ``m_c = min(n_c, max(budget_c, round(F·n_c)))``
    points uniformly without replacement, so the pool always holds at least each class's budget.
    ``F = 1`` returns ``arange(n)`` without drawing anything. Draws from its own seeded generator.
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


@dataclass(frozen=True)
class _PassSettings:
    """How the proxy pass runs (see :func:`coreaug.proxies.compute_proxies`)."""

    kind: str = "bias"
    batch_size: int | str | None = None
    num_workers: int = 0
    proj_dim: int | None = None
    head: nn.Module | None = None


def _pool_proxies(model: nn.Module, view: Dataset, pool: torch.Tensor, settings: _PassSettings, *,
                  device: torch.device, ctx: DistContext | None, needs: frozenset[str], seed: int):
    """Proxies of the pool positions, in pool order. Under DDP each rank runs the pass on its strided
    shard ``pool[rank::world]`` (no duplicates) and the shards are all-gathered, so every rank holds
    all of them (features and embeddings on ``device``, labels/losses/indices/probs/grad norms on the CPU)."""
    from coreaug.proxies import Proxies, compute_proxies

    world, rank = (ctx.world_size, ctx.rank) if ctx is not None and ctx.enabled else (1, 0)
    kw = dict(kind=settings.kind, batch_size=settings.batch_size, device=device, num_workers=settings.num_workers,
              out_device=device, needs=needs, proj_dim=settings.proj_dim, seed=seed, head=settings.head)
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


def select_from_view(
    model: nn.Module | None,
    view: Dataset,
    labels: torch.Tensor,
    *,
    selector: str = "coreset",
    fraction: float | int = 0.1,
    per_class: str = PER_CLASS_DEFAULT,
    seed: int = 0,
    epoch: int = 0,
    proxy: str = "bias",
    proxy_pool: float = 1.0,
    proj_dim: int | None = None,
    head: nn.Module | None = None,
    batch_size: int | str | None = None,
    num_workers: int = 0,
    options: Mapping[str, Any] | None = None,
    normalize_weights: bool = True,
    history: Any = None,
    device: torch.device | str | None = None,
    ctx: DistContext | None = None,
) -> CoresetSelection:
    """Select on ``view`` (items ``(x, y, index)`` with ``index`` = position; ``labels`` = its targets).

    Seeds derive from ``(seed, epoch)`` only: the selector's from ``derive_seed(seed, epoch, 1)``,
    the pool's from ``derive_seed(seed, epoch, 4)``. Nothing global is read or advanced. ``fraction``
    may be an int (an absolute total budget). ``options`` go to the selector (e.g. ``greedy``,
    ``similarity`` for the coreset); ``normalize_weights=False`` keeps raw cluster sizes (rescaled
    to the class under a pool). Returns dataset indices (positions of ``view``), ascending.

    Raises:
        ConfigError: unknown selector or option; SelectionError / InputError: bad budgets or labels.
    """
    from coreaug.device import resolve_device
    from coreaug.select import get_selector, select

    t0 = time.perf_counter()
    dev = resolve_device(device) if device is not None else _model_device(model)
    spec = get_selector(selector)
    options = dict(options or {})
    sel_seed = derive_seed(seed, epoch, SEED_SELECTOR) % 2**31
    if not (spec.needs - {"history"}):
        # random / history-based selection needs no forward pass: positions are dataset indices
        sel = select(spec.name, labels=labels, fraction=fraction, seed=sel_seed, history=history,
                     per_class=per_class, **options)
        indices, weights, info = sel.indices.cpu().long(), torch.ones(sel.indices.numel()), sel.info
        passes = 0
    else:
        if model is None:
            raise ConfigError(f"selector {spec.name!r} needs a model for its proxy pass")
        classes, sizes, budgets = class_budget_plan(labels, fraction, per_class)
        pool = stratified_pool(labels, proxy_pool, budgets, seed=derive_seed(seed, epoch, SEED_POOL))
        settings = _PassSettings(proxy, batch_size, num_workers, proj_dim, head)
        proxies = _pool_proxies(model, view, pool, settings, device=dev, ctx=ctx, needs=spec.needs, seed=seed)
        plan = _Budgets(classes, sizes, budgets, fraction, per_class)
        positions, weights, info = _select_from_pool(spec, proxies, plan, seed=sel_seed, device=dev, ctx=ctx,
                                                     history=history, options=options, normalize=normalize_weights)
        indices = proxies.indices[positions]  # pool positions → dataset indices (ascending)
        passes = int(pool.numel())
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return CoresetSelection(indices, weights, int(epoch), time.perf_counter() - t0, info, passes)


@dataclass(frozen=True)
class _Budgets:
    classes: list[int]
    sizes: list[int]
    budgets: list[int]
    fraction: float | int
    per_class: str


def _model_device(model: nn.Module | None) -> torch.device:
    param = None if model is None else next(getattr(model, "module", model).parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _select_from_pool(spec, proxies, plan: _Budgets, *, seed: int, device: torch.device, ctx: DistContext | None,
                      history: Any, options: dict[str, Any], normalize: bool
                      ) -> tuple[torch.Tensor, torch.Tensor, Mapping[str, Any]]:
    """Sorted pool positions of S, their weights and the selector's info."""
    from coreaug.select import select
    from coreaug.select.base import resolve_total_budget

    y = proxies.labels
    # the budgets of the whole set (a pool only changes where they are picked from)
    fraction: Any = resolve_total_budget(plan.fraction, sum(plan.sizes)) if plan.per_class == "none" \
        else list(plan.budgets)
    if spec.name != "coreset":  # every rank runs them on the gathered proxies (deterministic)
        sel = select(spec.name, features=proxies.features, labels=y, losses=proxies.losses, probs=proxies.probs,
                     embeddings=proxies.embeddings, grad_norms=proxies.grad_norms, history=history,
                     fraction=fraction, seed=seed, per_class=plan.per_class, **options)
        if not spec.weighted:
            return sel.indices.cpu().long(), torch.ones(sel.indices.numel()), sel.info
        pos, w = _pool_weights(sel.indices.cpu().long(), sel.weights.cpu().float(), y, plan, normalize)
        return pos, w, sel.info
    pos, w, info = _sharded_coreset(proxies, plan, fraction, seed=seed, device=device, ctx=ctx, options=options)
    order = torch.argsort(pos)
    pos, w = _pool_weights(pos[order], w[order], y, plan, normalize)
    return pos, w, info


def _sharded_coreset(proxies, plan: _Budgets, fraction: Any, *, seed: int, device: torch.device,
                     ctx: DistContext | None, options: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Facility location per class, classes split across DDP ranks; raw cluster sizes, unsorted."""
    from coreaug.select import select

    y = proxies.labels
    m = int(y.numel())
    world, rank = (ctx.world_size, ctx.rank) if ctx is not None and ctx.enabled else (1, 0)
    owner = [0] if plan.per_class == "none" else split_classes([int((y == c).sum()) for c in plan.classes], world)
    mine = [i for i, r in enumerate(owner) if r == rank]
    if world == 1:
        rows = None
    else:
        keep = torch.isin(y, torch.tensor([plan.classes[i] for i in mine], dtype=torch.long)) \
            if plan.per_class != "none" else torch.ones(m, dtype=torch.bool)
        rows = keep.nonzero().flatten() if mine else torch.empty(0, dtype=torch.long)
    part_pos, part_w, info = torch.empty(0, dtype=torch.long), torch.empty(0), {}
    if mine:
        f, yy = (proxies.features, y) if rows is None else (proxies.features[rows.to(proxies.features.device)], y[rows])
        b = fraction if plan.per_class == "none" else [plan.budgets[i] for i in mine]
        kw = {"device": device, **options}
        sel = select("coreset", features=f, labels=yy, fraction=b, seed=seed, per_class=plan.per_class,
                     normalize_weights=False, **kw)
        part_pos = sel.indices.cpu().long() if rows is None else rows[sel.indices.cpu().long()]
        part_w, info = sel.weights.cpu().float(), dict(sel.info)
    if world > 1:
        parts = all_gather_object((part_pos, part_w), ctx)
        part_pos = torch.cat([p for p, _ in parts])
        part_w = torch.cat([w for _, w in parts])
    return part_pos, part_w, info


def _pool_weights(pos: torch.Tensor, w: torch.Tensor, y: torch.Tensor, plan: _Budgets, normalize: bool
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights of a weighted selector on the pool → class scale, then normalised to mean 1 (§3.5)."""
    m = int(y.numel())
    sizes = plan.sizes
    if m < int(sum(sizes)):  # a proxy pool: cluster sizes within the pool → class scale
        if plan.per_class == "none":
            w = w * (sum(sizes) / m)
        else:
            pool_counts = torch.bincount(y, minlength=max(plan.classes) + 1).double()
            full_counts = torch.zeros_like(pool_counts)
            full_counts[torch.tensor(plan.classes)] = torch.tensor(sizes, dtype=torch.float64)
            w = (w.double() * (full_counts / pool_counts.clamp_min(1))[y[pos]]).float()
    if normalize:
        w = w * (w.numel() / w.sum())  # γ normalised to mean 1 over the coreset (docs/paper-notes.md §3.5)
    return pos, w


def select_coreset(
    model: nn.Module | None,
    dataset: Dataset,
    *,
    selector: str = "coreset",
    fraction: float | int = 0.1,
    per_class: str = PER_CLASS_DEFAULT,
    seed: int = 0,
    items: Any = None,
    transform: Any = None,
    head: nn.Module | None = None,
    num_classes: int | None = None,
    proxy: str = "bias",
    proxy_pool: float = 1.0,
    proj_dim: int | None = None,
    batch_size: int | str | None = None,
    num_workers: int = 0,
    normalize_weights: bool = True,
    device: torch.device | str | None = None,
    **selector_options: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One-shot selection on any map-style dataset: ``(indices, weights)`` in **dataset indices**.

    ``dataset`` items are ``(x, y)`` (or dicts with ``items=coreaug.DictItems(...)``); pass the
    un-augmented view (the proxy pass should not see random augmentations), or ``transform=`` to
    apply to each ``x`` first. ``model`` is any classifier whose logits come from ``head`` (default:
    ``model.get_classifier()`` / ``model.fc`` / the last ``nn.Linear``); ``None`` is allowed for
    selectors that need no forward pass (``random``). Extra keywords go to the selector
    (``coreaug info`` lists each selector's options). Nothing global is read, seeded or advanced.

    Example::

        idx, w = coreaug.select_coreset(model, train_set, selector="coreset", fraction=0.1)
        subset = torch.utils.data.Subset(train_set, idx.tolist())
    """
    from coreaug.api.items import IndexedView, check_fraction, check_head, dataset_labels

    view = IndexedView.wrap(dataset, items=items, transform=transform)
    check_fraction(fraction, len(view))
    labels = dataset_labels(view, num_classes=num_classes)
    if model is not None:
        check_head(model, head, labels, num_classes)
    sel = select_from_view(model, view, labels, selector=selector, fraction=fraction, per_class=per_class,
                           seed=seed, proxy=proxy, proxy_pool=proxy_pool, proj_dim=proj_dim, head=head,
                           batch_size=batch_size, num_workers=num_workers, options=selector_options,
                           normalize_weights=normalize_weights, device=device)
    return sel.indices, sel.weights
