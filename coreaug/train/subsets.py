"""``coreaug train``'s view of selection: a :class:`TrainConfig` → the public pipeline.

The pipeline itself (proxy pass → selector → dataset indices, pool rescaling, weight
normalisation, DDP sharding) lives in :mod:`coreaug.api.selection`; the training loop drives it
through :class:`coreaug.api.AugmentedCoreset` (:func:`coreset_for`). :func:`select_subset` is the
same step as one function of a config, kept for the tests and benchmarks that call it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset

from coreaug.api.coreset import AugmentedCoreset
from coreaug.distributed import DistContext
from coreaug.train.config import PruningConfig, TrainConfig


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


def coreset_for(cfg: TrainConfig, weak: Dataset, strong: Dataset | None, eval_train: Dataset, *, num_workers: int = 0,
                history=None, num_classes: int | None = None) -> AugmentedCoreset:
    """The :class:`AugmentedCoreset` of a run: ``cfg``'s regime, selector and budgets over its views
    (weak main set, strong copies, the test-time view for the proxy pass)."""
    return AugmentedCoreset(
        weak, strong=strong, proxy_dataset=eval_train, selector=cfg.selector, fraction=cfg.fraction,
        reselect_every=cfg.reselect_every, regime=cfg.method, seed=cfg.seed, per_class=cfg.per_class, proxy=cfg.proxy,
        proxy_pool=cfg.proxy_pool, aug_weight=cfg.aug_weight, proxy_batch_size=cfg.eval_batch_size,
        proxy_num_workers=num_workers, history=history, num_classes=num_classes,
        pruning=cfg.pruning, epochs=cfg.epochs, pruning_options=pruning_options(cfg.dynamic_pruning),
    )


def pruning_options(p: PruningConfig) -> dict:
    """The settings of ``p.pruning`` for :func:`~coreaug.api.pruning.make_pruning` (none when it is off)."""
    if p.pruning == "none":
        return {}
    if p.pruning == "infobatch":
        return {"prune_ratio": p.prune_ratio, "delta": p.prune_delta}
    opts = {"keep": p.prune_keep, "c": p.prune_c, "window": p.prune_window}
    return {**opts, "epsilon": p.prune_epsilon} if p.pruning == "epsilon-greedy" else opts


def select_subset(cfg: TrainConfig, model: nn.Module, eval_train_view: Dataset, *, epoch: int, device: torch.device,
                  ctx: DistContext | None = None, history=None) -> SubsetState:
    """The proxy pass and the selector of ``cfg`` for ``epoch`` on ``eval_train_view`` (see
    :func:`coreaug.api.selection.select_from_view`); under DDP every rank calls it and gets the same state."""
    from coreaug.device import resolve_num_workers
    from coreaug.models import last_linear

    # the model's width: a probe (diagnostics) may lack the highest classes
    coreset = coreset_for(cfg, eval_train_view, eval_train_view, eval_train_view,
                          num_workers=resolve_num_workers(cfg.num_workers, device), history=history,
                          num_classes=last_linear(model).out_features if cfg.selector != "random" else None)
    sel = coreset.select(model, epoch, device=device, ctx=ctx)
    return SubsetState(sel.indices, sel.weights, coreset.random_main, epoch)
