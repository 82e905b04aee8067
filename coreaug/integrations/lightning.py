"""Augmented coresets in PyTorch Lightning (extra ``[lightning]``): two callbacks over :mod:`coreaug.api`.

::

    import lightning as L
    import coreaug
    from coreaug.integrations.lightning import AugmentedCoresetCallback, SpectralDiagnosticsCallback

    class Module(L.LightningModule):
        def training_step(self, batch, batch_idx):
            x, y, w = batch                                     # w: the coreset weights γ (1 for strong copies)
            return coreaug.weighted_loss(self(x), y, w)

    coreset = coreaug.AugmentedCoreset(train_set, strong=strong_tf, fraction=0.1, reselect_every=5)
    data = AugmentedCoresetCallback(coreset, batch_size=128)
    trainer = L.Trainer(max_epochs=200, callbacks=[data, SpectralDiagnosticsCallback(10, coreset=coreset)])
    trainer.fit(Module(), train_dataloaders=data.train_dataloader())

**Design.** Lightning builds the train dataloader once per ``fit`` (``reload_dataloaders_every_n_epochs``
rebuilds it, at a cost, but is not needed) and calls ``iter()`` on it at the start of every epoch.
:meth:`AugmentedCoresetCallback.train_dataloader` returns one stable iterable whose ``iter()`` asks the
coreset for the *current* epoch's loader (``coreset.loader(pl_module, trainer.current_epoch, ...)``),
which reselects at epochs 0, R, 2R, … with the module as it is then. Its ``len()`` is
``coreset.steps_per_epoch(batch_size, world_size=trainer.world_size)``, the same every epoch, so
Lightning's progress, ``val_check_interval`` and ``estimated_stepping_batches`` are right. It is not a
``torch.utils.data.DataLoader``, so Lightning injects no sampler: under DDP (any strategy that
initialises ``torch.distributed``) the API shards the epoch itself with one seed on every rank and
runs the selection sharded, so every rank holds the same selection and a disjoint shard. A
``train_dataloader`` method of your ``LightningModule`` or ``LightningDataModule`` may return
``callback.train_dataloader()`` instead of passing it to ``fit``.

**Checkpoints.** The callback's ``state_dict`` is the coreset's, so ``trainer.fit(..., ckpt_path=...)``
resumes with the selection, weights and schedule of the interrupted run.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator

import torch

from coreaug.api.coreset import AugmentedCoreset, EpochLoader
from coreaug.errors import ConfigError
from coreaug.integrations import missing_extra

try:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback
except ImportError:
    raise missing_extra("lightning", "lightning") from None

__all__ = ["AugmentedCoresetCallback", "CoresetEpochs", "SpectralDiagnosticsCallback"]


class CoresetEpochs:
    """The train "dataloader" given to Lightning: each ``iter()`` is the current epoch's batches.

    ``iter()`` is lazy (Lightning calls it once just to check the object is iterable): the epoch's
    loader, and a due reselection, are made when the first batch is requested.
    """

    def __init__(self, callback: "AugmentedCoresetCallback"):
        self._callback = callback

    def __len__(self) -> int:
        return self._callback.steps_per_epoch()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        return self._batches()

    def _batches(self) -> Iterator[tuple[torch.Tensor, ...]]:
        yield from self._callback.epoch_loader()


class AugmentedCoresetCallback(Callback):
    """Trains a Lightning module on ``coreset``: serves the train batches ``(x, y, w)`` (``with_index=True``:
    ``(x, y, w, index, view)``) and checkpoints the selection.

    Args:
        coreset: the :class:`coreaug.AugmentedCoreset` (dataset, strong augmentation, selector, R, regime).
        batch_size, shuffle, num_workers, pin_memory, with_index: as in :meth:`coreaug.AugmentedCoreset.loader`.
        log: log ``coreset/subset_size``, ``coreset/reselected`` and ``coreset/selection_time`` once per epoch.

    Attributes:
        reselected_at: the epochs at which this process selected (restored selections are not listed).
    """

    def __init__(self, coreset: AugmentedCoreset, *, batch_size: int, shuffle: bool = True, num_workers: int = 0,
                 pin_memory: bool = False, with_index: bool = False, log: bool = True):
        if not isinstance(coreset, AugmentedCoreset):
            raise ConfigError(f"coreset must be a coreaug.AugmentedCoreset, got {type(coreset).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self.coreset, self.batch_size, self.shuffle = coreset, batch_size, shuffle
        self.num_workers, self.pin_memory, self.with_index, self.log = int(num_workers), pin_memory, with_index, log
        self.reselected_at: list[int] = []
        self._trainer: pl.Trainer | None = None
        self._module: pl.LightningModule | None = None
        self._epochs = CoresetEpochs(self)

    # -- the train dataloader ------------------------------------------------------------------
    def train_dataloader(self, trainer: pl.Trainer | None = None, pl_module: pl.LightningModule | None = None
                         ) -> CoresetEpochs:
        """The iterable to train on: ``trainer.fit(module, train_dataloaders=callback.train_dataloader())``
        (or return it from your module's ``train_dataloader``). The arguments are accepted and ignored:
        the callback sees the trainer and module in ``setup``."""
        return self._epochs

    def steps_per_epoch(self) -> int:
        """Batches per epoch on this rank (size step-counting LR schedules with it)."""
        world = self._trainer.world_size if self._trainer is not None else 1
        return self.coreset.steps_per_epoch(self.batch_size, world_size=world)

    def epoch_loader(self) -> EpochLoader:
        """The current epoch's loader (reselecting when due) for the fitted module."""
        if self._trainer is None or self._module is None:
            raise ConfigError("AugmentedCoresetCallback.train_dataloader() was iterated outside trainer.fit with the "
                              "callback: pass it in Trainer(callbacks=[...])")
        epoch = int(self._trainer.current_epoch)
        due = self.coreset.due(epoch)
        loader = self.coreset.loader(self._module, epoch, batch_size=self.batch_size, shuffle=self.shuffle,
                                     num_workers=self.num_workers, pin_memory=self.pin_memory,
                                     with_index=self.with_index, device=self._module.device)
        if due:
            self.reselected_at.append(epoch)
        return loader

    # -- Lightning hooks -----------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer, self._module = trainer, pl_module

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.log or self.coreset.selection is None:
            return
        epoch = int(trainer.current_epoch)
        pl_module.log_dict({"coreset/subset_size": float(self.coreset.indices.numel()),
                            "coreset/reselected": float(self.coreset.selection.epoch == epoch),
                            "coreset/selection_time": float(self.coreset.selection_time)},
                           on_step=False, on_epoch=True, rank_zero_only=True)

    def state_dict(self) -> dict[str, Any]:
        return {"coreset": self.coreset.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.coreset.load_state_dict(state_dict["coreset"])


class SpectralDiagnosticsCallback(Callback):
    """``coreaug train --diagnostics-every K`` for a Lightning run (:mod:`coreaug.train.diagnostics`).

    After epochs 0 (at the start), K, 2K, … and the last (``max_epochs``), rank 0 measures the probe
    Jacobian's spectrum, its shift and rotation under the strong augmentation, and (with a coreset) the
    alignment error ξ of the coreset's selector on the probe against a random subset, and logs every
    scalar column as ``diagnostics/<column>`` (plus ``diagnostics/epoch``) to each of ``trainer.loggers``
    (TensorBoard, CSV, W&B, …) at the current global step. The model diagnosed is the LightningModule:
    its forward must return the logits and its classifier be its last ``nn.Linear``.

    Args:
        every: K.
        coreset: the run's :class:`coreaug.AugmentedCoreset`: its un-augmented ``proxy_dataset`` view is the
            probe's source, its strong view gives the augmented copies, its selector settings give ξ.
        dataset, strong, items, transform: without a coreset: the probe's source (test-time transform),
            the strong augmentation (a callable or an aligned dataset; ``None``: no shift/rotation), and how
            to read items, as in :class:`coreaug.AugmentedCoreset`.
        probe_size: N, drawn class-stratified once per run; params: ``"last"`` (classifier) or ``"all"``.
        seed: of the probe draw (default: the coreset's, else 0); out_dir: also write ``diagnostics.csv``
            and ``diagnostics.jsonl`` there; batch_size: of the probe's forward passes.

    Attributes:
        rows: the diagnostics rows so far (checkpointed, so a resumed run does not recompute them).
    """

    def __init__(self, every: int, *, coreset: AugmentedCoreset | None = None, dataset: Any = None,
                 strong: Callable[[Any], Any] | Any = None, items: Any = None, transform: Any = None,
                 probe_size: int = 256, params: str = "last", seed: int | None = None,
                 out_dir: str | Path | None = None, batch_size: int | str = "auto"):
        from coreaug.train.diagnostics import TrainingDiagnostics
        from coreaug.train.observers import DiagnosticsObserver

        probe_view, strong_view = _diagnostics_views(coreset, dataset, strong, items, transform)
        self.diagnostics = TrainingDiagnostics(
            probe_view, strong_view=strong_view, coreset=coreset, every=every, probe_size=probe_size, params=params,
            seed=seed, out_dir=out_dir, batch_size=batch_size)
        # the observer of `coreaug train --diagnostics-every`, run on this Lightning trainer
        self.observer = DiagnosticsObserver(self.diagnostics, on_row=self._log)
        self.coreset = coreset
        self._trainer: pl.Trainer | None = None

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.diagnostics.rows

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.diagnostics.device = pl_module.device
        max_epochs = trainer.max_epochs
        self.diagnostics.last_epoch = max_epochs if max_epochs is not None and max_epochs > 0 else None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.observer.on_fit_start(self._observed(trainer, pl_module), int(trainer.current_epoch))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.observer.row_fields(self._observed(trainer, pl_module), int(trainer.current_epoch))

    def _observed(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> SimpleNamespace:
        """What :class:`~coreaug.train.observers.DiagnosticsObserver` reads of a trainer, from Lightning's."""
        self._trainer = trainer
        self.diagnostics.device = pl_module.device
        history = self.coreset.history if self.coreset is not None else None
        return SimpleNamespace(raw_model=pl_module, tracker=history,
                               ctx=SimpleNamespace(is_main=trainer.is_global_zero))

    def _log(self, row: dict[str, Any]) -> None:
        """Each diagnostics row to every one of the trainer's loggers, at the current global step."""
        metrics = diagnostics_metrics(row)
        for logger in self._trainer.loggers:
            logger.log_metrics(metrics, step=self._trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": list(self.diagnostics.rows)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.diagnostics.rows = list(state_dict.get("rows") or [])


def diagnostics_metrics(row: dict[str, Any], prefix: str = "diagnostics/") -> dict[str, float]:
    """The finite scalar columns of a diagnostics row (:data:`coreaug.train.diagnostics.CSV_FIELDS`) as
    ``{prefix + column: value}``, ready for ``logger.log_metrics``."""
    from coreaug.io import finite_scalar
    from coreaug.train.diagnostics import CSV_FIELDS

    values = {key: finite_scalar(row.get(key)) for key in CSV_FIELDS}
    return {prefix + key: v for key, v in values.items() if v is not None}


def _diagnostics_views(coreset: AugmentedCoreset | None, dataset: Any, strong: Any, items: Any, transform: Any):
    """(probe view, strong view) of :class:`SpectralDiagnosticsCallback`: the coreset's, or ``dataset``'s."""
    from coreaug.api.items import IndexedView, StrongView

    if dataset is None:
        if coreset is None:
            raise ConfigError("SpectralDiagnosticsCallback needs coreset= (an AugmentedCoreset) or dataset=")
        return coreset.proxy_view, coreset.strong_view
    view = IndexedView.wrap(dataset, items=items, transform=transform)
    if strong is None:
        return view, None
    if hasattr(strong, "__getitem__") and hasattr(strong, "__len__"):
        return view, IndexedView.wrap(strong, items=items, transform=transform)
    if not callable(strong):
        raise ConfigError(f"strong must be a callable transform or a Dataset, got {type(strong).__name__}")
    return view, StrongView(view, strong)
