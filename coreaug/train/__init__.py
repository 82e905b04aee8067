"""Training pipeline: augmented-coreset regimes, baselines, presets, checkpoint/resume, DDP.

Public API::

    from coreaug.train import TrainConfig, resolve_config, train, PRESETS
    cfg = resolve_config("digits-quick", overrides={"epochs": 3})
    results = train(cfg, "runs/demo", quiet=True)

A configuration is eight groups of fields (``DataConfig``, ``ModelConfig`` as ``cfg.network``,
``SelectionConfig``, ``PruningConfig`` as ``cfg.dynamic_pruning``, ``AugmentationConfig``,
``OptimisationConfig``, ``ExecutionConfig``, ``DiagnosticsConfig``); every field also reads and writes by
its flat name (``cfg.lr``), which is its YAML key and ``--flag``.
"""

from coreaug.train.config import (
    AUG_METHODS, METHODS, SELECTORS, SUBSET_METHODS, AugmentationConfig, DataConfig, DiagnosticsConfig, ExecutionConfig,
    ModelConfig, OptimisationConfig, PruningConfig, SelectionConfig, TrainConfig, resolve_config, validate,
)
from coreaug.api.epoch import EpochDataset, EpochPlan, plan_epoch
from coreaug.api.loss import weighted_loss as weighted_batch_loss
from coreaug.train.loop import train
from coreaug.train.trainer import evaluate
from coreaug.train.presets import PRESETS

__all__ = [
    "AUG_METHODS", "METHODS", "SELECTORS", "SUBSET_METHODS", "PRESETS", "TrainConfig", "resolve_config", "validate",
    "DataConfig", "ModelConfig", "SelectionConfig", "PruningConfig", "AugmentationConfig", "OptimisationConfig",
    "ExecutionConfig", "DiagnosticsConfig",
    "EpochDataset", "EpochPlan", "plan_epoch", "train", "evaluate", "weighted_batch_loss",
]
