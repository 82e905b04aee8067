"""Symmetric label noise, seeded, recording which labels were flipped.

Convention ("symmetric, to a different class"): exactly ``round(rate · n)`` examples, chosen
uniformly without replacement, get a new label drawn uniformly from the ``C − 1`` classes other
than their current one. So ``rate`` is the *actual* fraction of wrong labels (not the
"uniform over all C classes" variant, where a 1/C share of the redrawn labels stays correct).
``round`` is Python's (half to even).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import torch

from coreaug.data.base import DataBundle
from coreaug.errors import ConfigError, InputError

__all__ = ["inject_symmetric_noise", "add_label_noise"]


def inject_symmetric_noise(
    targets: torch.Tensor | Sequence[int], rate: float, num_classes: int, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip ``round(rate · n)`` labels, each to a uniformly drawn *different* class.

    Args:
        targets: clean integer labels, shape ``(n,)``, in ``[0, num_classes)``; not modified.
        rate: fraction of labels to corrupt, in ``[0, 1)``.
        num_classes: number of classes ``C`` (≥ 2 when anything is flipped).
        seed: seed of the draw; the same inputs and seed give the same result.

    Returns:
        ``(noisy_targets, flipped)``: a new ``int64`` tensor of labels and a ``bool`` mask,
        ``flipped[i]`` is ``True`` iff ``noisy_targets[i] != targets[i]``.

    Raises:
        ConfigError: ``rate`` outside ``[0, 1)``, or ``num_classes`` < 2 with a positive count.
        InputError: ``targets`` not 1-D integers in ``[0, num_classes)``.
    """
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or not 0 <= rate < 1:
        raise ConfigError(f"label-noise rate must be a number in [0, 1), got {rate!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    clean = torch.as_tensor(targets)
    if clean.ndim != 1 or clean.is_floating_point() or clean.is_complex() or clean.dtype == torch.bool:
        raise InputError(f"targets must be a 1-D integer tensor, got shape {tuple(clean.shape)} dtype {clean.dtype}")
    clean = clean.to(device="cpu", dtype=torch.long)
    n = clean.shape[0]
    if n and (int(clean.min()) < 0 or int(clean.max()) >= num_classes):
        raise InputError(
            f"targets must lie in [0, {num_classes}), found range [{int(clean.min())}, {int(clean.max())}]"
        )
    count = int(round(rate * n))
    noisy = clean.clone()
    flipped = torch.zeros(n, dtype=torch.bool)
    if count == 0:
        return noisy, flipped
    if num_classes < 2:
        raise ConfigError("label noise needs at least 2 classes to flip a label to a different class")
    generator = torch.Generator().manual_seed(int(seed))
    chosen = torch.randperm(n, generator=generator)[:count]
    # An offset in 1..C-1 added mod C is a uniform draw over the other C-1 classes.
    offset = torch.randint(1, num_classes, (count,), generator=generator)
    noisy[chosen] = (clean[chosen] + offset) % num_classes
    flipped[chosen] = True
    return noisy, flipped


def add_label_noise(bundle: DataBundle, rate: float, *, seed: int) -> DataBundle:
    """Return a copy of ``bundle`` whose *training* labels carry symmetric noise (test stays clean).

    The new training set is a view sharing the images (``train.with_targets``). What was done is
    recorded in ``extra["label_noise"]``: ``rate``, ``seed``, ``flipped`` (bool mask over the
    training set), and ``clean_targets``.

    Raises:
        ConfigError: bad ``rate``, or the training set cannot take new labels.
    """
    train = bundle.train
    if not hasattr(train, "with_targets"):
        raise ConfigError(f"the {bundle.name} training set ({type(train).__name__}) does not support replacing labels")
    noisy, flipped = inject_symmetric_noise(train.targets, rate, bundle.num_classes, seed=seed)
    extra = dict(bundle.extra)
    extra["label_noise"] = {"rate": float(rate), "seed": int(seed), "flipped": flipped,
                            "clean_targets": train.targets.clone()}
    return dataclasses.replace(bundle, train=train.with_targets(noisy), extra=extra)
