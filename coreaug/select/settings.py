"""Facility location, read like scikit-learn: *what* is optimised (``algorithm``) apart from *how the
engine runs* (:class:`EngineSettings`), and a typed result of one greedy run (:class:`GreedyResult`).

``algorithm`` is the optimiser:

* ``"exact"`` — the exact greedy (every step takes the largest marginal gain), run by the batched
  engine on the features' device: an incremental compiled loop on CPU, a sweep on CUDA
  (:attr:`EngineSettings.step` picks one by hand);
* ``"lazy"`` — lazy greedy (Minoux), the same picks up to ties, class by class in Python;
* ``"naive"`` — the reference ``O(k n²)`` greedy;
* ``"stochastic"`` — stochastic greedy (Mirzasoleiman et al. 2015), ``epsilon`` of
  :func:`coreaug.select.facility_location`.

:class:`EngineSettings` never changes what is selected, only memory, tiling, threads and precision.
``facility_location(..., algorithm=..., engine=EngineSettings(...))`` is the same call as the older
flat keywords (``greedy=``, ``memory_budget=``, …), which keep working.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from coreaug.errors import SelectionError
from coreaug.select.similarity import DEFAULT_CHUNK_BYTES, DEFAULT_MEMORY_BUDGET

__all__ = ["ALGORITHMS", "ENGINE_STEPS", "EngineSettings", "GreedyResult", "greedy_rule"]

ALGORITHMS: tuple[str, ...] = ("exact", "lazy", "naive", "stochastic")
#: How the exact engine takes a step: chosen by device ("auto"), incremental (CPU) or a sweep (CUDA).
ENGINE_STEPS: tuple[str, ...] = ("auto", "incremental", "sweep")


@dataclass(frozen=True)
class EngineSettings:
    """How facility location runs; none of these changes which points are selected (up to exact ties,
    and float32 vs float64 rounding for ``dtype``).

    Attributes:
        step: the exact engine's step rule (``auto``: incremental on CPU, sweep on CUDA).
        memory_budget: bytes a class's dense similarity matrix may take before it is streamed.
        chunk_bytes: temporaries of streamed passes.
        batch_bytes: the padded similarity tensor of one batch of classes (``None``: by device).
        threads: CPU threads inside the tensor greedy loops (``None``: torch's setting).
        dtype: compute dtype.
        lazy_batch: candidates re-evaluated per lazy round.
    """

    step: str = "auto"
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    batch_bytes: int | None = None
    threads: int | None = 1
    dtype: torch.dtype = torch.float32
    lazy_batch: int = 16

    def __post_init__(self) -> None:
        if self.step not in ENGINE_STEPS:
            raise SelectionError(f"unknown engine step {self.step!r}; choose one of: {', '.join(ENGINE_STEPS)}")

    def keywords(self) -> dict[str, Any]:
        """The flat keywords of :func:`coreaug.select.facility_location` these settings stand for."""
        out = asdict(self)
        out.pop("step")
        return out


def greedy_rule(algorithm: str, engine: EngineSettings | None) -> str:
    """The ``greedy=`` value of an ``algorithm`` (``"exact"`` → the engine's step rule)."""
    if algorithm not in ALGORITHMS:
        raise SelectionError(f"unknown algorithm {algorithm!r}; choose one of: {', '.join(ALGORITHMS)}")
    if algorithm == "exact":
        return (engine or EngineSettings()).step
    if engine is not None and engine.step != "auto":
        raise SelectionError(f"engine step {engine.step!r} applies to algorithm='exact', not {algorithm!r}")
    return algorithm


@dataclass(frozen=True)
class GreedyResult:
    """One greedy run on one ground set (:func:`coreaug.select.greedy_facility_location`).

    Attributes:
        order: picks in greedy order (positions into the ground set, CPU ``int64``).
        counts: cluster size of each pick, same order (ties → the earlier pick).
        objective: F(S).
        dense: whether the ``n × n`` similarity matrix was held in memory.
        evaluations: similarity-row evaluations of the lazy / stochastic loops (``None`` elsewhere).
    """

    order: torch.Tensor
    counts: torch.Tensor
    objective: float
    dense: bool
    evaluations: int | None = None

    def __getitem__(self, key: str) -> Any:
        """``result["order"]`` — the mapping access of the earlier dict result, kept for callers of it."""
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def keys(self) -> tuple[str, ...]:
        return tuple(self.__dataclass_fields__)
