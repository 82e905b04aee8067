"""The weighted loss of augmented-coreset training (docs/paper-notes.md §3.6)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from coreaug.errors import InputError

__all__ = ["weighted_loss", "per_example_loss"]


def per_example_loss(logits: Any, targets: torch.Tensor) -> torch.Tensor:
    """Unweighted per-example cross-entropy in float32 (the score dynamic pruning records)."""
    return F.cross_entropy(_logits(logits).float(), targets, reduction="none")


def weighted_loss(logits: Any, targets: torch.Tensor, weights: torch.Tensor, *,
                  per_example: torch.Tensor | None = None) -> torch.Tensor:
    """``mean_i(w_i · CE(logits_i, y_i))``, the official code's loss: coreset elements weigh their
    γ (mean 1), other examples 1; computed in float32 whatever the autocast dtype.

    ``logits``: ``(N, C)``, or a model output with a ``.logits`` attribute (Hugging Face).
    ``per_example``: the batch's :func:`per_example_loss` when the caller needs it too (e.g. to
    feed :meth:`coreaug.AugmentedCoreset.record`), so it is computed once.
    Shapes are checked on the host (no device synchronisation).
    """
    logits = _logits(logits)
    n = logits.shape[0]
    if targets.shape != (n,) or weights.shape != (n,):
        raise InputError(f"targets and weights must have shape ({n},) to match the logits, got "
                         f"{tuple(targets.shape)} and {tuple(weights.shape)}")
    if per_example is None:
        per_example = per_example_loss(logits, targets)
    return (weights.to(per_example.dtype) * per_example).mean()


def _logits(logits: Any) -> torch.Tensor:
    logits = getattr(logits, "logits", logits)
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(f"logits must be an (N, C) tensor, got {shape}")
    return logits
