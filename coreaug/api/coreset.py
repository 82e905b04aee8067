"""Augmented coresets in any training loop: :class:`AugmentedCoreset` (a schedule with a loader).

It holds what the paper's method needs between epochs: the current selection S (dataset indices)
and its weights γ, when to reselect (every R epochs from epoch 0, docs/paper-notes.md §5.2), the
regime that composes each epoch (§4: a main set plus one strong-augmented copy of each element of
S, appended), and regime (c)'s random main subset. Each epoch::

    for x, y, w in coreset.loader(model, epoch, batch_size=128):   # reselects when due
        loss = coreaug.weighted_loss(model(x), y, w)

Randomness: every draw comes from a generator seeded by ``(seed, epoch, purpose)``
(:func:`coreaug.runtime.derive_seed`): the selection, the pool, the random main subset and the
loader's shuffling. Nothing here reads, advances or reseeds torch's, numpy's or Python's global
RNG, and nothing is patched. Your transforms draw from the global RNG as in any DataLoader (with
``num_workers > 0`` from worker RNGs seeded by the loader's own generator).

Epoch length: ``len(coreset.loader(...))`` is ``ceil((|main| + |S|) / batch_size)``; it is the same
every epoch of a run (the budgets are fixed) but shorter than a full-data epoch. A scheduler that
counts steps must be sized with :meth:`AugmentedCoreset.steps_per_epoch` (or use an epoch-based
schedule, e.g. ``MultiStepLR`` stepped once per epoch, as ``coreaug train`` does).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping

import torch
from torch import nn
from torch.utils.data import Dataset

from coreaug.api.epoch import EpochDataset, EpochPlan, PersistentEpochLoader, make_loader, plan_epoch
from coreaug.api.items import (
    IndexedView, StrongView, check_fraction, check_head, check_strong_transform, dataset_labels,
)
from coreaug.api.selection import (
    PER_CLASS_DEFAULT, SEED_RANDOM_MAIN, CoresetSelection, class_budget_plan, select_from_view,
)
from coreaug.api.pruning import DynamicPruning, make_pruning
from coreaug.distributed import DistContext, all_gather_object
from coreaug.errors import ConfigError, InputError
from coreaug.runtime import derive_seed

__all__ = ["AugmentedCoreset", "REGIMES", "SUBSET_REGIMES", "STRONG_REGIMES", "FULL_MAIN_REGIMES", "EpochLoader"]

#: Regimes (``coreaug train --method``): what each epoch trains on (docs/paper-notes.md §4).
REGIMES: dict[str, str] = {
    "full": "all n examples, no strong copies",
    "full-aug": "all n examples + a strong copy of every example (full augmentation)",
    "full+aug-subset": "(a) all n examples + strong copies of S",
    "subset-only": "(b) S weighted by γ + strong copies of S",
    "random+aug-subset": "(c) a random subset of size |S| + strong copies of S",
    "subset": "S weighted by γ, no strong copies",
}
#: Regimes that train on a selected subset S (proxy pass and selector every R epochs).
SUBSET_REGIMES: tuple[str, ...] = tuple(r for r in REGIMES if r not in ("full", "full-aug"))
#: Regimes that append strong-augmented copies.
STRONG_REGIMES: tuple[str, ...] = tuple(r for r in REGIMES if r not in ("full", "subset"))
#: Regimes whose main set is all n examples (what dynamic pruning thins).
FULL_MAIN_REGIMES: tuple[str, ...] = ("full", "full-aug", "full+aug-subset")
_SEED_LOADER = 3


class EpochLoader:
    """One epoch's batches ``(x, y, w)`` (or ``(x, y, w, index, is_strong)`` with ``with_index=True``).

    ``len()`` is the number of batches; ``sampler.set_epoch`` has been called under DDP; ``plan`` is the
    epoch's composition (:class:`~coreaug.api.epoch.EpochPlan`) the batches are drawn from.
    """

    def __init__(self, batches: Any, with_index: bool, plan: EpochPlan):
        self._batches, self._with_index, self.plan = batches, with_index, plan

    def __len__(self) -> int:
        return len(self._batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        # with_index: the DataLoader's own iterator, so iter() starts it exactly as iter(DataLoader)
        # would (each DataLoader iterator draws a base seed from the loader's generator when made)
        return iter(self._batches) if self._with_index else self._triples()

    def _triples(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for x, y, w, _idx, _view in self._batches:
            yield x, y, w


class AugmentedCoreset:
    """A reselecting, weighted, augmented coreset of ``dataset`` (scikit-learn-style: settings in
    ``__init__``, state in attributes ending in ``_``-free properties, ``state_dict`` to resume).

    Args:
        dataset: the training set, any map-style ``Dataset`` of ``(x, y)`` items with your weak
            (usual) augmentation applied; dicts through ``items=coreaug.DictItems(...)``.
        strong: the strong augmentation: a callable applied to each ``x`` of ``dataset`` (it must
            keep the shape), or a ``Dataset`` aligned with ``dataset`` that yields the strong view.
            Needed by every regime that appends strong copies.
        selector: any name of ``coreaug info``'s selector table (``coreset``, ``random``,
            ``maxloss``, ``forgetting``, …); options go in ``selector_options``.
        fraction: subset size as a fraction in (0, 1] of ``len(dataset)`` (or an int count).
        reselect_every: R, reselect at epochs 0, R, 2R, …
        regime: one of :data:`REGIMES` (``subset-only`` is the paper's (b)).
        seed: the seed of every draw (see the module docstring).
        per_class: per-class budgets: ``equal-ceil`` (ceil(B/C), official), ``proportional``, ``equal``, ``none``.
        proxy: ``bias`` (``softmax − onehot``) or ``weight`` (``⊗`` the penultimate embedding).
        proxy_pool: F in (0, 1]: run the proxy pass on a fresh stratified F·n pool per reselection.
        proxy_dataset: the un-augmented view used for the proxy pass (same items as ``dataset``;
            default: ``dataset`` itself, i.e. with your weak augmentation).
        items: how to read an item (``None``: ``(x, y)``; :class:`~coreaug.api.items.DictItems`; a callable).
        transform: applied to each ``x`` after ``items`` (e.g. to-tensor for raw rows).
        head: the layer that outputs the logits, for models whose classifier is not found
            automatically (default: ``get_classifier()``, ``fc``, or the last ``nn.Linear``).
        num_classes: default ``max(label) + 1``; the head's width must equal it.
        aug_weight: ``"one"`` (appended copies weigh 1, official) or ``"gamma"`` (they weigh γ).
        selector_options: keywords for the selector (e.g. ``{"greedy": "lazy"}`` for ``coreset``).
        proxy_batch_size, proxy_num_workers, proj_dim: the proxy pass's batch, loader workers and
            weight-proxy sketch size.
        history: a :class:`coreaug.select.ForgettingTracker` for history selectors (default: one
            is made and fed by :meth:`record`).
        pruning: dynamic pruning of the main set (:mod:`coreaug.api.pruning`): ``"infobatch"``,
            ``"ucb"``, ``"epsilon-greedy"`` or a :class:`~coreaug.api.pruning.DynamicPruning`; for the
            regimes whose main set is the full data (``full``, ``full-aug``, ``full+aug-subset``). It is
            fed the training losses through :meth:`record` (``losses=``).
        epochs: the run's number of epochs (InfoBatch anneals over the last ``1 − delta`` of them).
        pruning_options: keywords of :func:`~coreaug.api.pruning.make_pruning` (``prune_ratio``,
            ``delta``, ``keep``, ``epsilon``, ``c``, ``window``).
    """

    def __init__(self, dataset: Dataset, *, strong: Callable[[Any], Any] | Dataset | None = None,
                 selector: str = "coreset", fraction: float | int = 0.1, reselect_every: int = 5,
                 regime: str = "subset-only", seed: int = 0, per_class: str = PER_CLASS_DEFAULT,
                 proxy: str = "bias", proxy_pool: float = 1.0, proxy_dataset: Dataset | None = None,
                 items: Any = None, transform: Any = None, head: nn.Module | None = None,
                 num_classes: int | None = None, aug_weight: str = "one",
                 selector_options: Mapping[str, Any] | None = None, proxy_batch_size: int | str | None = None,
                 proxy_num_workers: int = 0, proj_dim: int | None = None, history: Any = None,
                 pruning: str | DynamicPruning | None = None, epochs: int | None = None,
                 pruning_options: Mapping[str, Any] | None = None):
        from coreaug.select import get_selector
        from coreaug.select.budgets import PER_CLASS_MODES

        if regime not in REGIMES:
            raise ConfigError(f"unknown regime {regime!r}; choose one of: {', '.join(REGIMES)}")
        self.spec = get_selector(selector)
        if isinstance(reselect_every, bool) or not isinstance(reselect_every, int) or reselect_every < 1:
            raise ConfigError(f"reselect_every must be an int >= 1, got {reselect_every!r}")
        if per_class not in PER_CLASS_MODES:
            raise ConfigError(f"unknown per_class {per_class!r}; choose one of: {', '.join(PER_CLASS_MODES)}")
        if not 0.0 < float(proxy_pool) <= 1.0:
            raise ConfigError(f"proxy_pool must lie in (0, 1], got {proxy_pool}")
        if aug_weight not in ("one", "gamma"):
            raise ConfigError(f"aug_weight must be 'one' or 'gamma', got {aug_weight!r}")
        self.regime, self.selector, self.fraction = regime, self.spec.name, fraction
        self.reselect_every, self.seed, self.per_class = int(reselect_every), int(seed), per_class
        self.proxy, self.proxy_pool, self.aug_weight = proxy, float(proxy_pool), aug_weight
        self.head, self.num_classes, self.proj_dim = head, num_classes, proj_dim
        self.selector_options = dict(selector_options or {})
        self.proxy_batch_size, self.proxy_num_workers = proxy_batch_size, int(proxy_num_workers)
        self.weak_view = IndexedView.wrap(dataset, items=items, transform=transform)
        self.strong_view = self._strong_view(strong, items, transform)
        self.proxy_view = self.weak_view if proxy_dataset is None else \
            IndexedView.wrap(proxy_dataset, items=items, transform=transform)
        self.n = len(self.weak_view)
        check_fraction(fraction, self.n)
        for name, view in (("strong", self.strong_view), ("proxy_dataset", self.proxy_view)):
            if view is not None and len(view) != self.n:
                raise InputError(f"{name} has {len(view)} items but dataset has {self.n}; they must be aligned")
        self._history, self._owns_history = history, False
        self._labels: torch.Tensor | None = None
        self._selection: CoresetSelection | None = None
        self._random_main: torch.Tensor | None = None
        self._last_epoch = -1
        self._selection_time = 0.0
        self._persistent: dict[tuple, PersistentEpochLoader] = {}
        self.epochs = epochs
        self.pruning = self._pruning(pruning, dict(pruning_options or {}))
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []  # losses recorded since the last sync

    def _pruning(self, pruning: Any, options: dict[str, Any]) -> DynamicPruning | None:
        if pruning is None or pruning == "none":
            if options:
                raise ConfigError("pruning_options given without pruning=")
            return None
        if self.regime not in FULL_MAIN_REGIMES:
            raise ConfigError(f"dynamic pruning thins a full-data main set: use it with regime "
                              f"{', '.join(FULL_MAIN_REGIMES)}, not {self.regime!r}")
        if isinstance(pruning, DynamicPruning):
            return pruning
        if not isinstance(pruning, str):
            raise ConfigError(f"pruning must be a method name or a DynamicPruning, got {type(pruning).__name__}")
        if pruning == "infobatch" and (isinstance(self.epochs, bool) or not isinstance(self.epochs, int)
                                       or self.epochs < 1):
            raise ConfigError("pruning='infobatch' anneals over the last epochs: pass epochs=<the run's epochs>")
        return make_pruning(pruning, self.n, seed=self.seed, **options)

    # -- construction helpers ------------------------------------------------------------------
    def _strong_view(self, strong: Any, items: Any, transform: Any) -> Dataset | None:
        if strong is None:
            if self.regime in STRONG_REGIMES:
                raise ConfigError(f"regime {self.regime!r} appends strong-augmented copies: pass strong=<transform>")
            return None
        if isinstance(strong, Dataset) or (hasattr(strong, "__getitem__") and hasattr(strong, "__len__")):
            return IndexedView.wrap(strong, items=items, transform=transform)
        if not callable(strong):
            raise InputError(f"strong must be a callable transform or a Dataset, got {type(strong).__name__}")
        view = StrongView(self.weak_view, strong)
        check_strong_transform(self.weak_view, view)
        return view

    # -- state ---------------------------------------------------------------------------------
    @property
    def labels(self) -> torch.Tensor:
        """The dataset's labels (int64, read once and checked)."""
        if self._labels is None:
            self._labels = dataset_labels(self.proxy_view, num_classes=self.num_classes)
        return self._labels

    @property
    def uses_subset(self) -> bool:
        """False for the regimes without a selection (``full``, ``full-aug``)."""
        return self.regime in SUBSET_REGIMES

    @property
    def selection(self) -> CoresetSelection | None:
        """The current selection (dataset indices, weights, epoch, seconds), or ``None`` before the first."""
        return self._selection

    @property
    def indices(self) -> torch.Tensor | None:
        """Dataset indices of the current S (ascending)."""
        return None if self._selection is None else self._selection.indices

    @property
    def weights(self) -> torch.Tensor | None:
        """Loss weights γ of the current S (mean 1 for weighted selectors, else ones)."""
        return None if self._selection is None else self._selection.weights

    @property
    def random_main(self) -> torch.Tensor | None:
        """Regime (c)'s random main subset (dataset indices), redrawn at each reselection."""
        return self._random_main

    @property
    def selection_time(self) -> float:
        """Total seconds spent selecting (proxy passes + selectors) in this process and restored ones."""
        return self._selection_time

    @property
    def history(self):
        """The forgetting history (a :class:`~coreaug.select.ForgettingTracker`) of history selectors, else ``None``."""
        if self._history is None and "history" in self.spec.needs:
            from coreaug.select import ForgettingTracker

            self._history, self._owns_history = ForgettingTracker(self.n), True
        return self._history

    def record(self, indices: torch.Tensor, correct: torch.Tensor | None = None, *,
               losses: torch.Tensor | None = None) -> None:
        """Feed training outcomes of main-set items (dataset indices, in the order seen): whether
        each was classified correctly (the forgetting history of history selectors) and/or its
        training loss (dynamic pruning's scores). Either is a no-op when nothing reads it. Losses
        are buffered until :meth:`sync` (called by :meth:`loader`), so no device sync happens here."""
        if correct is not None and self.history is not None:
            self.history.update(torch.as_tensor(indices).cpu(), torch.as_tensor(correct).cpu())
        if losses is not None and self.pruning is not None:
            self._pending.append((torch.as_tensor(indices).detach(), torch.as_tensor(losses).detach()))

    def sync(self, ctx: DistContext | None = None) -> None:
        """Apply the losses recorded since the last sync to the pruning scores; under DDP every
        rank's, in rank order, so all ranks hold the same scores (a collective: call it on every
        rank, e.g. at the end of each epoch before a checkpoint; :meth:`loader` calls it too)."""
        if self.pruning is None:
            return
        idx = torch.cat([i.cpu() for i, _ in self._pending]) if self._pending else torch.empty(0, dtype=torch.long)
        val = torch.cat([v.float().cpu() for _, v in self._pending]) if self._pending else torch.empty(0)
        self._pending = []
        ctx = ctx if ctx is not None else _dist_context(None, None)
        parts = all_gather_object((idx, val), ctx) if ctx is not None and ctx.enabled else [(idx, val)]
        for part_idx, part_val in parts:
            self.pruning.record(part_idx, part_val)

    # -- schedule ------------------------------------------------------------------------------
    def due(self, epoch: int) -> bool:
        """Whether ``epoch`` reselects: the first epoch seen, then epochs 0, R, 2R, … (once each)."""
        if not self.uses_subset:
            return False
        if self._selection is None:
            return True
        return epoch % self.reselect_every == 0 and self._selection.epoch != epoch

    def select(self, model: nn.Module | None, epoch: int, *, device: torch.device | str | None = None,
               ctx: DistContext | None = None) -> CoresetSelection:
        """Select now for ``epoch`` (whether due or not) and make it current."""
        self._check_epoch(epoch)
        if model is not None and self.spec.needs - {"history"}:
            check_head(model, self.head, self.labels, self.num_classes)
        sel = select_from_view(
            model, self.proxy_view, self.labels, selector=self.selector, fraction=self.fraction,
            per_class=self.per_class, seed=self.seed, epoch=epoch, proxy=self.proxy, proxy_pool=self.proxy_pool,
            proj_dim=self.proj_dim, head=self.head, batch_size=self.proxy_batch_size,
            num_workers=self.proxy_num_workers, options=self.selector_options, history=self.history,
            device=device, ctx=ctx if ctx is not None else _dist_context(model, device))
        self._selection = sel
        self._selection_time += sel.seconds
        if self.regime == "random+aug-subset":
            g = torch.Generator().manual_seed(derive_seed(self.seed, epoch, SEED_RANDOM_MAIN) % 2**63)
            self._random_main = torch.randperm(self.n, generator=g)[: sel.indices.numel()].sort().values
        return sel

    def update(self, model: nn.Module | None, epoch: int, **kw: Any) -> bool:
        """Reselect if :meth:`due`; return whether it did."""
        if not self.due(epoch):
            self._check_epoch(epoch)
            return False
        self.select(model, epoch, **kw)
        return True

    def plan(self, epoch: int | None = None) -> EpochPlan:
        """The current epoch's composition (dataset indices and weights of the main set and of the strong copies)."""
        sel = self._selection
        if self.uses_subset and sel is None:
            raise InputError("no selection yet: call loader(model, epoch) or select(model, epoch) first")
        plan = plan_epoch(self.regime, self.n, subset=None if sel is None else sel.indices,
                          gamma=None if sel is None else sel.weights, random_main=self._random_main,
                          aug_weight=self.aug_weight)
        if self.pruning is None:
            return plan
        if epoch is None:
            raise InputError("plan(epoch): dynamic pruning needs the epoch")
        keep, w = self.pruning.main_set(epoch, self.epochs or epoch + 1)
        if self.regime == "full-aug":  # pruned examples lose both views; a kept one's copy weighs like it
            return EpochPlan(keep, w, keep.clone(), w.clone())
        return EpochPlan(keep, w, plan.aug_indices, plan.aug_weights)

    def epoch_size(self) -> int:
        """Examples per epoch, known before any selection: ``|main| + |strong copies|``."""
        if self.pruning is not None:
            raise InputError("with dynamic pruning the epoch size changes every epoch: use len(plan(epoch))")
        if not self.uses_subset:
            return self.n * (1 if self.regime == "full" else 2)
        s = _total(self.fraction, self.n) if self.per_class == "none" else \
            sum(class_budget_plan(self.labels, self.fraction, self.per_class)[2])
        main = {"full+aug-subset": self.n, "subset-only": s, "random+aug-subset": s, "subset": s}[self.regime]
        return main + (0 if self.regime == "subset" else s)

    def steps_per_epoch(self, batch_size: int, *, drop_last: bool = False, world_size: int = 1) -> int:
        """Optimizer steps per epoch on each rank: size a step-counting LR schedule with
        ``epochs * steps_per_epoch(batch_size)`` (it is the same every epoch of a run)."""
        per_rank = -(-self.epoch_size() // world_size)
        return per_rank // batch_size if drop_last else -(-per_rank // batch_size)

    def loader(self, model: nn.Module | None, epoch: int, *, batch_size: int, shuffle: bool = True,
               num_workers: int = 0, pin_memory: bool = False, with_index: bool = False,
               distributed: bool | None = None, device: torch.device | str | None = None,
               ctx: DistContext | None = None) -> EpochLoader:
        """Reselect if due, then the epoch's batches ``(x, y, w)``.

        The order is a permutation drawn from ``derive_seed(seed, epoch, 3)``; under DDP
        (``distributed=None``: when a process group of more than one rank is initialised) every
        rank holds the same selection and gets a disjoint shard of one shared permutation.
        ``with_index=True`` yields ``(x, y, w, index, view)`` (``view`` 1 for strong copies).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
        ctx = ctx if ctx is not None else _dist_context(model, device) if distributed is not False else None
        self.update(model, epoch, device=device, ctx=ctx)
        self.sync(ctx)
        self._last_epoch = max(self._last_epoch, epoch)
        plan = self.plan(epoch)
        seed = derive_seed(self.seed, epoch, _SEED_LOADER) % 2**63
        dist_on = ctx is not None and ctx.enabled
        rank, world = (ctx.rank, ctx.world_size) if dist_on else (0, 1)
        if num_workers > 0:  # workers start once and stay; each epoch only the order changes
            key = (batch_size, num_workers, pin_memory, dist_on, rank, world)
            if key not in self._persistent:
                self._persistent[key] = PersistentEpochLoader(
                    self.weak_view, self.strong_view or self.weak_view, self.n, batch_size=batch_size,
                    num_workers=num_workers, pin_memory=pin_memory, distributed=dist_on, rank=rank, world_size=world)
            return EpochLoader(self._persistent[key].epoch(plan, seed=seed, epoch=epoch), with_index, plan)
        data = EpochDataset.from_plan(plan, self.weak_view, self.strong_view or self.weak_view)
        return EpochLoader(make_loader(data, batch_size=batch_size, seed=seed, distributed=dist_on, rank=rank,
                                       world_size=world, epoch=epoch, pin_memory=pin_memory, shuffle=shuffle),
                           with_index, plan)

    def _check_epoch(self, epoch: int) -> None:
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise InputError(f"epoch must be an int >= 0, got {epoch!r}")
        if epoch < self._last_epoch:
            raise InputError(f"loader()/select() called for epoch {epoch} after epoch {self._last_epoch}: epochs "
                             "must not go back (to restart, make a new AugmentedCoreset or load_state_dict)")

    # -- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The selection, its weights, regime (c)'s random subset, the last epoch and the time spent
        (plus the forgetting history when this object made it): enough to resume bit-for-bit."""
        sel = self._selection
        return {
            "indices": None if sel is None else sel.indices.cpu(), "weights": None if sel is None else sel.weights.cpu(),
            "random_main": None if self._random_main is None else self._random_main.cpu(),
            "epoch": None if sel is None else sel.epoch, "last_epoch": self._last_epoch,
            "selection_time": self._selection_time,
            "history": self._history.state_dict() if self._owns_history and self._history is not None else None,
            "pruning": None if self.pruning is None else self.pruning.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (also accepts the ``subset`` entry of older ``coreaug train`` checkpoints)."""
        if not isinstance(state, Mapping) or "indices" not in state:
            raise InputError("not an AugmentedCoreset state_dict (no 'indices')")
        if state["indices"] is None:
            self._selection = None
        else:
            idx = torch.as_tensor(state["indices"], dtype=torch.long)
            w = torch.as_tensor(state["weights"], dtype=torch.float32)
            if idx.shape != w.shape or (idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.n)):
                raise InputError(f"state_dict selection does not fit this dataset of {self.n} items")
            self._selection = CoresetSelection(idx, w, int(state["epoch"]))
        rm = state.get("random_main")
        self._random_main = None if rm is None else torch.as_tensor(rm, dtype=torch.long)
        self._last_epoch = int(state.get("last_epoch", -1) if state.get("last_epoch") is not None else -1)
        self._selection_time = float(state.get("selection_time") or 0.0)
        if state.get("history") is not None and self.history is not None:
            self.history.load_state_dict(state["history"])
        if state.get("pruning") is not None:
            if self.pruning is None:
                raise InputError("state_dict holds pruning scores but this AugmentedCoreset prunes nothing")
            self.pruning.load_state_dict(state["pruning"])


def _total(fraction: float | int, n: int) -> int:
    from coreaug.select.base import resolve_total_budget

    return int(resolve_total_budget(fraction, n))


def _dist_context(model: nn.Module | None, device: Any) -> DistContext | None:
    """A context for the initialised process group (``None`` when not distributed)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    from coreaug.api.selection import _model_device
    from coreaug.device import resolve_device

    dev = resolve_device(device) if device is not None else _model_device(model)
    return DistContext(True, dist.get_rank(), dist.get_world_size(), dev.index or 0, dev)

