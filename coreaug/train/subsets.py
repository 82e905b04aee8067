"""Subset selection for one reselection step: proxy pass → selector → (S, γ) (PAPER.md §3).

Every R epochs from epoch 0 the model is run once, in eval mode without gradients, over all n
training points with the **test-time transform** (:func:`coreaug.proxies.compute_proxies`); the
selector picks S from those proxies. The random main subset of regime (c) is redrawn at the same
epochs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset

from coreaug.train.config import TrainConfig
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
    """True at epochs 0, R, 2R, … (PAPER.md §5.2)."""
    return epoch % every == 0


def select_subset(
    cfg: TrainConfig,
    model: nn.Module,
    eval_train_view: Dataset,
    *,
    epoch: int,
    device: torch.device,
    history=None,
) -> SubsetState:
    """Run the proxy pass and the selector for ``epoch``.

    The registered selector (:mod:`coreaug.select.registry`) says what it needs: the pass computes
    exactly that union (skipped for ``random`` and for history-only selectors such as ``forgetting``,
    which reads ``history``, a :class:`~coreaug.select.ForgettingTracker` indexed by dataset index).
    Weighted selectors' weights are normalised to mean 1 (the coreset's γ convention); the others
    weigh 1.
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
    else:
        from coreaug.proxies import compute_proxies

        proxies = compute_proxies(model, eval_train_view, kind=cfg.proxy, batch_size=cfg.eval_batch_size,
                                  device=device, num_workers=cfg.num_workers, needs=spec.needs)
        if spec.name == "coreset":
            kw["normalize_weights"] = True  # γ normalised to mean 1 over the coreset (PAPER.md §3.5)
        sel = select(spec.name, features=proxies.features, labels=proxies.labels, losses=proxies.losses,
                     probs=proxies.probs, embeddings=proxies.embeddings, grad_norms=proxies.grad_norms,
                     history=history, fraction=cfg.fraction, seed=seed % 2**31, **kw)
        # map positions in the proxy arrays back to training-set indices
        indices = torch.as_tensor(proxies.indices, dtype=torch.long).cpu()[sel.indices.cpu().long()]
    if spec.weighted:
        weights = sel.weights.cpu().float()
        if spec.name != "coreset":  # the coreset's γ is normalised by the selector itself
            weights = weights * (weights.numel() / weights.sum())  # mean 1
    else:
        weights = torch.ones(indices.numel())
    random_main = None
    if cfg.method == "random+aug-subset":
        g = torch.Generator().manual_seed(derive_seed(cfg.seed, epoch, 2) % 2**63)
        random_main = torch.randperm(n, generator=g)[: indices.numel()].sort().values
    return SubsetState(indices, weights, random_main, epoch)


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
