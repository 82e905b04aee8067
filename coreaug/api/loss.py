"""The weighted loss of augmented-coreset training (docs/paper-notes.md §3.6)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from coreaug.errors import InputError

__all__ = ["weighted_loss"]


def weighted_loss(logits: Any, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``mean_i(w_i · CE(logits_i, y_i))``, the official code's loss: coreset elements weigh their
    γ (mean 1), other examples 1; computed in float32 whatever the autocast dtype.

    ``logits``: ``(N, C)``, or a model output with a ``.logits`` attribute (Hugging Face).
    Shapes are checked on the host (no device synchronisation).
    """
    logits = getattr(logits, "logits", logits)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(f"logits must be an (N, C) tensor, got {shape}")
    n = logits.shape[0]
    if targets.shape != (n,) or weights.shape != (n,):
        raise InputError(f"targets and weights must have shape ({n},) to match the logits, got "
                         f"{tuple(targets.shape)} and {tuple(weights.shape)}")
    per_example = F.cross_entropy(logits.float(), targets, reduction="none")
    return (weights.to(per_example.dtype) * per_example).mean()
