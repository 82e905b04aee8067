"""Forgetting events (Toneva et al. 2019, "An empirical study of example forgetting").

A *forgetting event* happens when an example that was classified correctly at one presentation is
misclassified at its next one (correct → incorrect); a *learning event* is the reverse. Toneva et
al. record correctness of each example on the mini-batch forward pass in which it is trained and
rank examples by their number of forgetting events; examples that are **never learned** (never
classified correctly) are ranked as if forgotten infinitely often. "Unforgettable" examples
(learned once, never forgotten) are the ones that can be pruned.

:class:`ForgettingTracker` holds that history for the ``n`` training examples; the training loop
(:class:`coreaug.train.observers.ForgettingObserver`) updates it with the predictions of every training batch on the main
(weak-view) copies — appended strong-augmented copies are a different input and are not recorded.
The loop adds each epoch's outcomes at the end of the epoch (under DDP gathered from every rank, in
rank order), so there is no per-batch host synchronisation.

:func:`forgetting_subset` keeps the ``k_c`` examples of each class with the most forgetting events,
never-learned first. **Examples without any recorded presentation** (all of them at epoch 0, and in
regime (b) every example not yet trained on) count as never learned. Forgetting counts are small
integers with many ties, so ties are broken by a seeded random order rather than by position:
**at epoch 0 (empty history) the selection is therefore a seeded uniform random subset per class**,
and later the not-yet-seen examples are explored first in random order.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from coreaug.errors import CheckpointError, SelectionError
from coreaug.select.base import Selection
from coreaug.select.common import finish, split_budgets, top_per_class

__all__ = ["ForgettingTracker", "forgetting_scores", "forgetting_subset"]


class ForgettingTracker:
    """Per-example correctness history of ``n`` training examples (CPU tensors).

    Attributes:
        prev: ``int8``, the last recorded outcome: −1 never presented, 0 incorrect, 1 correct.
        forgets: ``int64`` number of correct → incorrect transitions.
        learned: ``bool``, ever classified correctly.
        seen: ``int64`` number of recorded presentations.
    """

    def __init__(self, n: int):
        if int(n) < 1:
            raise SelectionError(f"ForgettingTracker needs n >= 1 examples, got {n}")
        self.n = int(n)
        self.prev = torch.full((self.n,), -1, dtype=torch.int8)
        self.forgets = torch.zeros(self.n, dtype=torch.long)
        self.learned = torch.zeros(self.n, dtype=torch.bool)
        self.seen = torch.zeros(self.n, dtype=torch.long)

    def update(self, indices: torch.Tensor, correct: torch.Tensor) -> None:
        """Record one presentation of each ``indices[k]`` (dataset index) with outcome ``correct[k]``.

        Repeated indices in one call are applied in order, as if presented one after another.
        """
        idx = torch.as_tensor(indices).detach().to("cpu", torch.long).flatten()
        ok = torch.as_tensor(correct).detach().to("cpu").flatten().to(torch.int8)
        if idx.numel() != ok.numel():
            raise SelectionError(f"got {idx.numel()} indices but {ok.numel()} outcomes")
        if idx.numel() == 0:
            return
        if int(idx.min()) < 0 or int(idx.max()) >= self.n:
            raise SelectionError(f"indices must lie in [0, {self.n}), got {int(idx.min())}..{int(idx.max())}")
        if torch.unique(idx).numel() != idx.numel():  # rare: apply in order, one group at a time
            for i, c in zip(idx.tolist(), ok.tolist()):
                self.update(torch.tensor([i]), torch.tensor([c]))
            return
        was = self.prev[idx]
        self.forgets[idx] += ((was == 1) & (ok == 0)).long()
        self.learned[idx] |= ok == 1
        self.seen[idx] += 1
        self.prev[idx] = ok

    def state_dict(self) -> dict[str, Any]:
        """Tensors to store in a checkpoint (clones)."""
        return {"n": self.n, "prev": self.prev.clone(), "forgets": self.forgets.clone(),
                "learned": self.learned.clone(), "seen": self.seen.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` (raises :class:`CheckpointError` on a size mismatch)."""
        try:
            n = int(state["n"])
            tensors = {k: torch.as_tensor(state[k]).clone() for k in ("prev", "forgets", "learned", "seen")}
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"forgetting history in the checkpoint is malformed ({exc})") from None
        if n != self.n or any(t.numel() != n for t in tensors.values()):
            raise CheckpointError(f"forgetting history covers {n} examples but the training set has {self.n}")
        self.prev = tensors["prev"].to(torch.int8)
        self.forgets = tensors["forgets"].long()
        self.learned = tensors["learned"].bool()
        self.seen = tensors["seen"].long()

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> "ForgettingTracker":
        t = cls(int(state["n"]))
        t.load_state_dict(state)
        return t


def _as_tracker(history: Any) -> ForgettingTracker:
    if isinstance(history, ForgettingTracker):
        return history
    if isinstance(history, Mapping):
        try:
            return ForgettingTracker.from_state_dict(history)
        except (KeyError, CheckpointError) as exc:
            raise SelectionError(f"history is not a ForgettingTracker state: {exc}") from None
    raise SelectionError(f"history must be a ForgettingTracker (or its state_dict), got {type(history).__name__}")


def forgetting_scores(history: ForgettingTracker | Mapping[str, Any]) -> torch.Tensor:
    """Forgetting events per example (float64); never learned or never presented → ``+inf``."""
    t = _as_tracker(history)
    s = t.forgets.to(torch.float64)
    s[~t.learned] = math.inf
    return s


def forgetting_subset(
    history: ForgettingTracker | Mapping[str, Any],
    labels: torch.Tensor,
    budget_or_fraction: int | float | Any,
    *,
    num_classes: int | None = None,
    per_class: str = "proportional",
    seed: int = 0,
) -> Selection:
    """The ``k_c`` most-forgotten examples of each class (never learned first; ties: seeded random
    order). Positions are dataset indices ``0..n−1`` of the tracker (``labels`` must have length n).

    ``info["empty_history"]`` is True when nothing was recorded yet (the result is then a seeded
    random subset). Raises :class:`SelectionError` on a history/labels length mismatch or bad budgets.
    """
    t = _as_tracker(history)
    scores = forgetting_scores(t)
    y, classes, members, budgets = split_budgets(labels, t.n, budget_or_fraction, num_classes, per_class)
    gen = torch.Generator().manual_seed(int(seed))
    rank = torch.empty(t.n, dtype=torch.long)
    rank[torch.randperm(t.n, generator=gen)] = torch.arange(t.n)
    picked = top_per_class(scores, members, budgets, tiebreak=rank)
    info = {"method": "forgetting", "per_class": per_class, "classes": classes, "budgets": budgets,
            "empty_history": bool((t.seen == 0).all()), "never_learned": int((~t.learned).sum())}
    return finish(picked, None, info)
