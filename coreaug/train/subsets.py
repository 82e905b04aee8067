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
) -> SubsetState:
    """Run the proxy pass (skipped for the ``random`` selector) and the selector for ``epoch``."""
    from coreaug.select import select

    n = len(eval_train_view)
    seed = derive_seed(cfg.seed, epoch, 1)
    labels = torch.as_tensor(eval_train_view.targets, dtype=torch.long)
    kw = {"per_class": cfg.per_class}
    if cfg.selector == "random":
        # Random selection needs no forward pass.
        sel = select("random", labels=labels, fraction=cfg.fraction, seed=seed % 2**31, **kw)
        indices = sel.indices.cpu().long()
    else:
        from coreaug.proxies import compute_proxies

        proxies = compute_proxies(model, eval_train_view, kind=cfg.proxy, batch_size=cfg.eval_batch_size,
                                  device=device, num_workers=cfg.num_workers)
        if cfg.selector == "coreset":
            kw["normalize_weights"] = True  # γ normalised to mean 1 over the coreset (PAPER.md §3.5)
        sel = select(cfg.selector, features=proxies.features, labels=proxies.labels,
                     losses=proxies.losses, fraction=cfg.fraction, seed=seed % 2**31, **kw)
        # map positions in the proxy arrays back to training-set indices
        indices = torch.as_tensor(proxies.indices, dtype=torch.long).cpu()[sel.indices.cpu().long()]
    weights = sel.weights.cpu().float() if cfg.selector == "coreset" else torch.ones(indices.numel())
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
