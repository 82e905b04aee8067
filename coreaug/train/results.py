"""The ``results.json`` of a run: totals and finals from its per-epoch metrics rows."""

from __future__ import annotations

import platform
from typing import Any

import torch

from coreaug.train.config import TrainConfig
from coreaug.train.cost import cost_totals

__all__ = ["summarize", "selection_share"]


def selection_share(selection: float, train: float) -> float:
    """Selection's share of train + selection wall-clock (0 when nothing ran)."""
    return selection / (selection + train) if selection + train > 0 else 0.0


def summarize(cfg: TrainConfig, rows: list[dict[str, Any]], *, device: torch.device, world_size: int,
              completed: bool, n_train: int | None = None) -> dict[str, Any]:
    """The ``results.json`` content from the per-epoch rows."""
    best = max(rows, key=lambda r: r["test_acc"]) if rows else None
    return {
        "dataset": cfg.dataset, "model": cfg.model, "method": cfg.method,
        "selector": cfg.selector if cfg.uses_subset else None,
        "fraction": cfg.fraction if cfg.uses_subset else 1.0,
        "reselect_every": cfg.reselect_every if cfg.uses_subset else None,
        "strong_aug": cfg.strong_aug if cfg.uses_strong_aug else None,
        "pruning": None if cfg.pruning == "none" else cfg.pruning,
        "label_noise": cfg.label_noise, "seed": cfg.seed, "epochs": cfg.epochs,
        "epochs_done": len(rows), "completed": completed,
        "final_test_acc": rows[-1]["test_acc"] if rows else None,
        "final_test_loss": rows[-1]["test_loss"] if rows else None,
        "final_train_loss": rows[-1]["train_loss"] if rows else None,
        "final_test_balanced_acc": rows[-1]["test_balanced_acc"] if rows else None,
        "best_test_acc": best["test_acc"] if best else None,
        "best_epoch": best["epoch"] if best else None,
        # speed-up inputs: wall-clock of training + selection (evaluation excluded), on this device
        "train_time_total": sum(r["train_time"] for r in rows),
        "selection_time_total": sum(r["selection_time"] for r in rows),
        "eval_time_total": sum(r["eval_time"] for r in rows),
        "selection_share": selection_share(sum(r["selection_time"] for r in rows), sum(r["train_time"] for r in rows)),
        "proxy_pool": cfg.proxy_pool if cfg.uses_subset and cfg.selector != "random" else None,
        "diagnostics_time_total": sum(r.get("diagnostics_time") or 0.0 for r in rows),
        "wall_clock_total": rows[-1]["wall_clock"] if rows else 0.0,
        "elapsed_total": rows[-1]["elapsed"] if rows else 0.0,
        "examples_seen_total": sum(r["epoch_examples"] for r in rows),
        "steps_total": sum(r["steps"] for r in rows),
        "mean_subset_size": (sum(r["subset_size"] for r in rows) / len(rows)) if rows else 0.0,
        "n_selections": sum(1 for r in rows if r["reselected"]),
        **cost_totals(cfg.selection, rows, n_train),
        "config_hash": cfg.hash(), "device": str(device), "world_size": world_size,
        "torch": torch.__version__, "host": platform.node(),
    }
