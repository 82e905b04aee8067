"""Process-level helpers shared by every layer: derived seeds, global seeding, a device-aware timer.

:func:`derive_seed` is pure. :func:`seed_everything` touches the global RNGs of torch, numpy and
``random`` and is therefore called only by code that owns the process (the ``coreaug train`` loop
and the loader workers it starts), never by the public API (:mod:`coreaug.api`).
"""

from __future__ import annotations

import random
import time

import numpy as np
import torch

__all__ = ["derive_seed", "seed_everything", "Timer"]


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
