"""What a run cost, so methods can be compared at equal cost (not only at equal subset size).

Per epoch the loop records example-passes (all ranks together): training forwards and backwards
(``fwd_train``, ``bwd_train``: every example of the epoch once each), the proxy pass's forwards
(``fwd_proxy``: the pool at a reselection) and the probe examples of the spectral diagnostics
(``diag_examples``; they observe the run and are kept apart), plus the peak memory so far.

:func:`cost_totals` sums them for ``results.json`` and asks whether selection paid for itself:
against the same epochs of its reference (full augmentation for the regimes that append strong
copies, else full data), a subset run trains on fewer examples; at the run's own measured time per
training example that saves ``(reference examples − examples trained) · seconds per example``. When
the selection took longer than that, ``selection_pays`` is false and the numbers say by how much.
"""

from __future__ import annotations

import resource
import sys
from typing import Any

import torch

__all__ = ["peak_memory_mb", "cost_totals", "selection_verdict"]


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: CUDA ``max_memory_allocated`` on a GPU, else the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def cost_totals(selection: Any, rows: list[dict[str, Any]], n_train: int | None) -> dict[str, Any]:
    """The cost fields of ``results.json`` (missing per-epoch fields of older runs count as 0); ``selection``:
    the run's :class:`~coreaug.train.config.SelectionConfig` (or anything with its ``uses_subset`` and
    ``uses_strong_aug``, e.g. the whole config)."""
    def total(key: str) -> int:
        return int(sum(r.get(key) or 0 for r in rows))

    out: dict[str, Any] = {
        "forward_passes_train_total": total("fwd_train"), "backward_passes_train_total": total("bwd_train"),
        "forward_passes_proxy_total": total("fwd_proxy"), "diagnostics_examples_total": total("diag_examples"),
        "peak_memory_mb": max((r.get("peak_mem_mb") or 0.0 for r in rows), default=0.0),
    }
    out["example_passes_total"] = (out["forward_passes_train_total"] + out["backward_passes_train_total"]
                                   + out["forward_passes_proxy_total"])
    out.update(selection_verdict(selection, rows, n_train))
    return out


def selection_verdict(selection: Any, rows: list[dict[str, Any]], n_train: int | None) -> dict[str, Any]:
    """``selection_saved_s`` (training time saved against the reference's same epochs, estimated at
    the run's own seconds per example) and ``selection_pays`` (``None`` without a selection). ``selection``
    as for :func:`cost_totals`."""
    selecting = sum(r.get("selection_time") or 0.0 for r in rows)
    trained = sum(r.get("epoch_examples") or 0 for r in rows)
    train_time = sum(r.get("train_time") or 0.0 for r in rows)
    if not selection.uses_subset or not n_train or not rows or trained == 0:
        return {"selection_saved_s": None, "selection_pays": None, "reference": None}
    per_example = train_time / trained
    reference = "full-aug" if selection.uses_strong_aug else "full"
    ref_examples = (2 if selection.uses_strong_aug else 1) * n_train * len(rows)
    saved = (ref_examples - trained) * per_example
    return {"selection_saved_s": saved, "selection_pays": selecting <= saved, "reference": reference}
