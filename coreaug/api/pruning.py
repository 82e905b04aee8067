"""Dynamic data pruning: each epoch a score-driven part of the main set is left out.

Three methods, each written from its paper's definition. Every method scores an example by the
training losses recorded as training sees it (:meth:`record`). Each epoch :meth:`main_set` returns
the kept dataset indices and their loss weights.

* :class:`InfoBatch` (Qin et al., ICLR 2024). Let ``H(z)`` be the example's most recent training
  loss and ``H̄`` the mean of ``H`` over the dataset. An example with ``H(z) < H̄`` is dropped with
  probability ``r`` (``prune_ratio``), independently of the others. A kept low-score example's loss
  is scaled by ``1/(1 − r)``, so the expected gradient stays that of the full data (the paper's
  rescaling, its Eq. 3). From epoch ``⌈δ·E⌉`` on (annealing, ``delta``) it trains on everything.
  Two choices the paper leaves open:

  - **First epoch.** No score exists before the first forward, so epoch 0 keeps everything. The
    official code does the same in effect: scores start at 1 and nothing lies below the mean.
  - **Unseen examples.** A pruned example keeps the score it had when it was last trained on
    (as in the official code). Its score can only change once it is drawn back in, which happens
    with probability 1 − r per epoch while it stays below the mean.

* :class:`UCBPruning` (Raju et al. 2021, "Accelerating deep learning with dynamic data
  pruning"). Score = mean + ``c``·std of the example's losses over its last ``window`` recordings.
  The top ``keep`` share of the examples is kept, weight 1. Examples with fewer than two recordings
  score +inf, so they are kept until their spread is known.
* :class:`EpsilonGreedyPruning` (same paper). Same score and kept size. A share ``epsilon`` of the
  kept set is drawn uniformly from the examples the scores would drop (exploration); the rest are
  the top scores.

Randomness comes from generators seeded by ``(seed, epoch)``. Scores are kept in a ``(n, window)``
float32 ring buffer: ``4·n·window`` bytes (CIFAR-10, window 5: 1 MB). :meth:`main_set` costs one
sort (UCB, ε-greedy) or one pass (InfoBatch) over ``n``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from coreaug.errors import ConfigError, InputError
from coreaug.runtime import derive_seed

__all__ = ["DynamicPruning", "InfoBatch", "UCBPruning", "EpsilonGreedyPruning", "PRUNING_METHODS", "PRUNING_RANGES",
           "Interval", "make_pruning"]


@dataclass(frozen=True)
class Interval:
    """The valid values of a setting, written as in mathematics (``[0, 1)``)."""

    low: float
    high: float
    closed_low: bool = True
    closed_high: bool = True

    def __contains__(self, value: float) -> bool:
        low_ok = value >= self.low if self.closed_low else value > self.low
        high_ok = value <= self.high if self.closed_high else value < self.high
        return low_ok and high_ok

    def __str__(self) -> str:
        return f"{'[' if self.closed_low else '('}{self.low:g}, {self.high:g}{']' if self.closed_high else ')'}"


#: The valid values of each pruning setting (keyword name); the config's ``prune_*`` fields are checked by
#: the same intervals (:func:`coreaug.train.config._check_pruning`).
PRUNING_RANGES: dict[str, Interval] = {
    "prune_ratio": Interval(0.0, 1.0, closed_high=False), "delta": Interval(0.0, 1.0, closed_low=False),
    "keep": Interval(0.0, 1.0, closed_low=False), "epsilon": Interval(0.0, 1.0),
    "c": Interval(0.0, math.inf, closed_high=False),
}

_SEED_PRUNE = 5


class DynamicPruning:
    """Base class: a ring buffer of recorded losses per example, a seeded per-epoch choice of the main set.

    Args:
        n: number of training examples.
        window: how many recent losses per example are kept (InfoBatch uses only the latest).
        seed: seeds each epoch's random draws (with the epoch).
    """

    name = "none"

    def __init__(self, n: int, *, window: int = 1, seed: int = 0):
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"the pruning window must be an int >= 1, got {window!r}")
        self.n, self.window, self.seed = int(n), int(window), int(seed)
        self.losses = torch.full((self.n, self.window), float("nan"))
        self.count = torch.zeros(self.n, dtype=torch.long)  # recordings so far (ring position = count % window)

    def record(self, indices: torch.Tensor, losses: torch.Tensor) -> None:
        """Add training losses of examples (dataset indices) in the order training saw them."""
        idx = torch.as_tensor(indices, dtype=torch.long).flatten().cpu()
        val = torch.as_tensor(losses, dtype=torch.float32).detach().flatten().cpu()
        if idx.shape != val.shape:
            raise InputError(f"record(): {idx.numel()} indices but {val.numel()} losses")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.n):
            raise InputError(f"record(): indices must lie in [0, {self.n})")
        if torch.unique(idx).numel() == idx.numel():  # the usual case: one vectorised write
            self.losses[idx, self.count[idx] % self.window] = val
            self.count[idx] += 1
            return
        for i, v in zip(idx.tolist(), val.tolist()):  # an index repeats within the call: in order
            self.losses[i, self.count[i] % self.window] = v
            self.count[i] += 1

    def latest(self) -> torch.Tensor:
        """Each example's most recent loss (NaN if never recorded)."""
        pos = (self.count - 1).clamp_min(0) % self.window
        out = self.losses[torch.arange(self.n), pos]
        return torch.where(self.count > 0, out, torch.full_like(out, float("nan")))

    def main_set(self, epoch: int, epochs: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(indices, weights)`` of the main set of ``epoch`` (of ``epochs``), indices ascending."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _generator(self, epoch: int) -> torch.Generator:
        return torch.Generator().manual_seed(derive_seed(self.seed, epoch, _SEED_PRUNE) % 2**63)

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "losses": self.losses.clone(), "count": self.count.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("name") != self.name or tuple(state["losses"].shape) != tuple(self.losses.shape):
            raise InputError(f"pruning state of {state.get('name')!r} with shape {tuple(state['losses'].shape)} "
                             f"does not fit {self.name!r} on {self.n} examples")
        self.losses = state["losses"].clone().float()
        self.count = state["count"].clone().long()


class InfoBatch(DynamicPruning):
    """InfoBatch: drop below-mean-loss examples with probability ``prune_ratio``, rescale the kept
    ones by ``1/(1 − prune_ratio)``, train on everything from epoch ``ceil(delta·epochs)`` on."""

    name = "infobatch"

    def __init__(self, n: int, *, prune_ratio: float = 0.5, delta: float = 0.875, seed: int = 0):
        if float(prune_ratio) not in PRUNING_RANGES["prune_ratio"]:
            raise ConfigError(f"prune_ratio must lie in {PRUNING_RANGES['prune_ratio']}, got {prune_ratio}")
        if float(delta) not in PRUNING_RANGES["delta"]:
            raise ConfigError(f"delta (the share of epochs that prune) must lie in {PRUNING_RANGES['delta']}, got {delta}")
        super().__init__(n, window=1, seed=seed)
        self.prune_ratio, self.delta = float(prune_ratio), float(delta)

    def main_set(self, epoch: int, epochs: int) -> tuple[torch.Tensor, torch.Tensor]:
        everything = torch.arange(self.n), torch.ones(self.n)
        if epoch >= math.ceil(self.delta * epochs) or self.prune_ratio == 0.0 or not bool((self.count > 0).any()):
            return everything  # annealing, no pruning, or no scores yet (first epoch)
        score = self.latest()
        seen = self.count > 0
        low = seen & (score < score[seen].mean())  # well-learned: below the mean score
        drop = low & (torch.rand(self.n, generator=self._generator(epoch)) < self.prune_ratio)
        keep = (~drop).nonzero().flatten()
        weights = torch.where(low[keep], torch.tensor(1.0 / (1.0 - self.prune_ratio)), torch.tensor(1.0))
        return keep, weights.float()


class UCBPruning(DynamicPruning):
    """Keep the ``keep`` share of examples with the highest upper confidence bound mean + c·std of
    their last ``window`` losses (Raju et al. 2021); weight 1."""

    name = "ucb"

    def __init__(self, n: int, *, keep: float = 0.7, c: float = 1.0, window: int = 5, seed: int = 0):
        if float(keep) not in PRUNING_RANGES["keep"]:
            raise ConfigError(f"keep (the share of examples trained on) must lie in {PRUNING_RANGES['keep']}, got {keep}")
        if float(c) not in PRUNING_RANGES["c"]:
            raise ConfigError(f"c (the weight of the loss spread in the score) must be >= 0, got {c}")
        super().__init__(n, window=window, seed=seed)
        self.keep, self.c = float(keep), float(c)

    def scores(self) -> torch.Tensor:
        """mean + c·std over the window; +inf for examples with fewer than two losses."""
        vals = self.losses
        k = self.count.clamp(max=self.window)
        mean = torch.nanmean(vals, dim=1)
        var = torch.nansum((vals - mean[:, None]) ** 2, dim=1) / (k - 1).clamp_min(1)
        score = mean + self.c * var.sqrt()
        return torch.where(k >= 2, score, torch.full_like(score, float("inf")))

    def _top(self, score: torch.Tensor, k: int) -> torch.Tensor:
        # stable order: ties (e.g. the +inf of unseen examples) go to the lower index
        return torch.sort(score, descending=True, stable=True).indices[:k]

    def main_set(self, epoch: int, epochs: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = max(1, int(math.floor(self.keep * self.n + 1e-9)))
        kept = self._top(self.scores(), k)
        return torch.sort(kept).values, torch.ones(k)


class EpsilonGreedyPruning(UCBPruning):
    """UCB's kept size; a share ``epsilon`` of it drawn uniformly from the rest (exploration)."""

    name = "epsilon-greedy"

    def __init__(self, n: int, *, keep: float = 0.7, epsilon: float = 0.1, c: float = 1.0, window: int = 5,
                 seed: int = 0):
        if float(epsilon) not in PRUNING_RANGES["epsilon"]:
            raise ConfigError(f"epsilon must lie in {PRUNING_RANGES['epsilon']}, got {epsilon}")
        super().__init__(n, keep=keep, c=c, window=window, seed=seed)
        self.epsilon = float(epsilon)

    def main_set(self, epoch: int, epochs: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = max(1, int(math.floor(self.keep * self.n + 1e-9)))
        explore = min(int(round(self.epsilon * k)), self.n - k)
        order = torch.sort(self.scores(), descending=True, stable=True).indices
        greedy, rest = order[: k - explore], order[k - explore:]
        random = rest[torch.randperm(rest.numel(), generator=self._generator(epoch))[:explore]]
        return torch.sort(torch.cat([greedy, random])).values, torch.ones(k)


#: ``--pruning`` names → classes.
PRUNING_METHODS: dict[str, type[DynamicPruning]] = {
    "infobatch": InfoBatch, "ucb": UCBPruning, "epsilon-greedy": EpsilonGreedyPruning,
}


def make_pruning(name: str, n: int, *, seed: int = 0, prune_ratio: float = 0.5, delta: float = 0.875,
                 keep: float = 0.7, epsilon: float = 0.1, c: float = 1.0, window: int = 5) -> DynamicPruning:
    """The pruning method ``name`` with the settings that apply to it."""
    if name == "infobatch":
        return InfoBatch(n, prune_ratio=prune_ratio, delta=delta, seed=seed)
    if name == "ucb":
        return UCBPruning(n, keep=keep, c=c, window=window, seed=seed)
    if name == "epsilon-greedy":
        return EpsilonGreedyPruning(n, keep=keep, epsilon=epsilon, c=c, window=window, seed=seed)
    raise ConfigError(f"unknown pruning method {name!r}; choose one of: none, {', '.join(PRUNING_METHODS)}")
