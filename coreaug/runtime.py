"""Process-level helpers shared by every layer: derived seeds, global seeding, a device-aware timer.

:func:`derive_seed` is pure. :func:`seed_everything` touches the global RNGs of torch, numpy and
``random`` and is therefore called only by code that owns the process (the ``coreaug train`` loop
and the loader workers it starts), never by the public API (:mod:`coreaug.api`).
"""

from __future__ import annotations

import random
import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

__all__ = ["derive_seed", "seed_everything", "preserved_rng", "Timer"]


def derive_seed(*parts: int) -> int:
    """A deterministic 63-bit seed from integers (e.g. ``(seed, epoch, purpose)``; FNV-1a over 64-bit words)."""
    h = 1469598103934665603
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFFFFFFFFFF


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's ``random`` (global state: process owners only)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (e.g. a user's random transform called once for a check) and put torch's CPU,
    numpy's and Python's global RNG states back afterwards, so the caller sees no draw."""
    states = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


class Timer:
    """Wall-clock timer that synchronises CUDA so GPU work is counted: ``with Timer(dev) as t: ...; t.elapsed``."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.elapsed = 0.0

    def __enter__(self) -> "Timer":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.elapsed = time.perf_counter() - self.start
