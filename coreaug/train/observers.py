"""Observers: what happens around a :class:`~coreaug.train.trainer.Trainer`'s epochs, one job each.

An observer implements any of the hooks below (Lightning-callback style; every one optional). The
Trainer calls them in list order:

* ``on_fit_start(trainer, start_epoch)`` — after the model, optimiser and schedule are built and
  restored, before the first epoch (every rank);
* ``on_batch_end(trainer, batch)`` — after each optimiser step, with the batch's
  :class:`~coreaug.train.trainer.StepOutput` (every rank; keep it cheap: no device sync);
* ``on_train_epoch_end(trainer, epoch)`` — after the epoch's training, before evaluation (every
  rank; the place for collectives such as gathering a history across ranks);
* ``row_fields(trainer, epoch)`` — after evaluation: extra fields of the epoch's metrics row
  (rank 0 computes; e.g. the diagnostics' time);
* ``on_epoch_end(trainer, row)`` — the finished metrics row (rank 0 only);
* ``on_fit_end(trainer, results)`` — the run ended, completed or stopped (every rank).

A new observer (a gradient-norm logger, …) is one class here and one line where
:func:`default_observers` (at the end of this file) lists them: this file alone.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable

import torch
from tqdm.auto import tqdm

from coreaug.api.epoch import WEAK
from coreaug.distributed import all_gather_object
from coreaug.hooks import pause_point
from coreaug.train.checkpoint import rng_state, write_checkpoint

if TYPE_CHECKING:  # pragma: no cover
    from coreaug.runfolder import RunFolder
    from coreaug.train.trainer import StepOutput, Trainer

__all__ = ["Observer", "ForgettingObserver", "DiagnosticsObserver", "MetricsObserver", "CheckpointObserver",
           "ProgressObserver", "TensorBoardObserver", "EpochCallback", "METRIC_FIELDS", "default_observers"]

METRIC_FIELDS: tuple[str, ...] = (
    "epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "test_balanced_acc", "train_time", "selection_time",
    "eval_time", "epoch_time", "wall_clock", "elapsed", "subset_size", "subset_weight_max", "epoch_examples",
    "reselected", "steps", "selection_share",
    "diagnostics_time",  # spectral diagnostics (coreaug.train.diagnostics); not in train/selection/wall_clock
    "fwd_train", "bwd_train", "fwd_proxy", "diag_examples", "peak_mem_mb",  # cost (coreaug.train.cost)
)


class Observer:
    """Base class: every hook does nothing."""

    def on_fit_start(self, trainer: "Trainer", start_epoch: int) -> None:
        pass

    def on_batch_end(self, trainer: "Trainer", batch: "StepOutput") -> None:
        pass

    def on_train_epoch_end(self, trainer: "Trainer", epoch: int) -> None:
        pass

    def row_fields(self, trainer: "Trainer", epoch: int) -> dict[str, Any]:
        return {}

    def on_epoch_end(self, trainer: "Trainer", row: dict[str, Any]) -> None:
        pass

    def on_fit_end(self, trainer: "Trainer", results: dict[str, Any]) -> None:
        pass


class ForgettingObserver(Observer):
    """Feeds the forgetting history of history selectors (through the public API's
    :meth:`~coreaug.api.AugmentedCoreset.record`, as a plain loop would) with the outcomes of the main
    (weak-view) copies, in presentation order; under DDP every rank's, in rank order, so each rank holds the
    same history."""

    def __init__(self):
        self._idx: list[torch.Tensor] = []
        self._hit: list[torch.Tensor] = []

    def on_batch_end(self, trainer: "Trainer", batch: "StepOutput") -> None:
        main = batch.view == WEAK
        self._idx.append(batch.index[main])
        self._hit.append(batch.hit[main.to(batch.hit.device)])  # no host sync here

    def on_train_epoch_end(self, trainer: "Trainer", epoch: int) -> None:
        idx = torch.cat(self._idx) if self._idx else torch.empty(0, dtype=torch.long)
        hit = torch.cat(self._hit).cpu() if self._hit else torch.empty(0, dtype=torch.bool)
        self._idx, self._hit = [], []
        for part_idx, part_hit in all_gather_object((idx, hit), trainer.ctx):  # [(idx, hit)] in one process
            trainer.coreset.record(part_idx, correct=part_hit)


class DiagnosticsObserver(Observer):
    """Spectral diagnostics every K epochs (rank 0; :class:`~coreaug.train.diagnostics.TrainingDiagnostics`):
    the epoch-0 diagnostic before the first epoch, then after each due epoch; their time and probe
    examples go into the metrics row (the epoch-0 one into the first row). ``on_row`` receives each
    diagnostics row (TensorBoard in ``coreaug train``, the loggers in the Lightning callback).

    Of its ``trainer`` argument it reads ``raw_model``, ``tracker`` (the forgetting history or ``None``) and
    ``ctx.is_main``, so :class:`coreaug.integrations.lightning.SpectralDiagnosticsCallback` runs it on a
    Lightning trainer too."""

    def __init__(self, diag, on_row: Callable[[dict[str, Any]], None] | None = None):
        self.diag, self.on_row = diag, on_row
        self._pending_time, self._pending_runs = 0.0, 0

    def _run(self, trainer: "Trainer", epoch: int) -> None:
        row = self.diag.run(trainer.raw_model, epoch, history=trainer.tracker)
        if self.on_row is not None:
            self.on_row(row)
        self._pending_time += float(row["time"])
        self._pending_runs += 1

    def on_fit_start(self, trainer: "Trainer", start_epoch: int) -> None:
        if trainer.ctx.is_main:
            self.diag.resume(start_epoch)
            if self.diag.due(start_epoch):
                self._run(trainer, start_epoch)

    def row_fields(self, trainer: "Trainer", epoch: int) -> dict[str, Any]:
        if trainer.ctx.is_main and self.diag.due(epoch + 1):  # the other ranks wait at the epoch's barrier
            self._run(trainer, epoch + 1)
        fields = {"diagnostics_time": self._pending_time, "diag_examples": self.diag.n * self._pending_runs}
        self._pending_time, self._pending_runs = 0.0, 0
        return fields


class MetricsObserver(Observer):
    """``metrics.csv`` and ``metrics.jsonl`` (strict JSON: NaN → null), rewritten atomically each epoch."""

    def __init__(self, folder: "RunFolder"):
        self.folder = folder

    def on_epoch_end(self, trainer: "Trainer", row: dict[str, Any]) -> None:
        self.folder.write_metrics(trainer.rows, METRIC_FIELDS)


class CheckpointObserver(Observer):
    """``checkpoint.pt`` after every epoch (atomic): model, optimiser, schedule, scaler, RNG, the
    coreset's state, the metrics rows and the forgetting history — a resumed run replays exactly."""

    def __init__(self, folder: "RunFolder"):
        self.folder = folder

    def on_epoch_end(self, trainer: "Trainer", row: dict[str, Any]) -> None:
        cfg = trainer.cfg
        write_checkpoint(self.folder.path, {
            "config_hash": cfg.hash(), "config": cfg.to_dict(), "epoch": row["epoch"],
            "model": trainer.raw_model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict(), "scaler": trainer.scaler.state_dict(), "rng": rng_state(),
            "subset": trainer.coreset.state_dict(), "metrics": trainer.rows,
            "forgetting": trainer.tracker.state_dict() if trainer.tracker is not None else None,
            "num_workers": trainer.workers,  # in-process vs worker loading draw augmentations differently
        })
        pause_point("epoch:end")  # fault-injection tests: killed right after a checkpoint


class ProgressObserver(Observer):
    """The epochs bar and one line per epoch (rank 0, unless quiet)."""

    def __init__(self, show: bool):
        self.show = show
        self.bar = None

    def on_fit_start(self, trainer: "Trainer", start_epoch: int) -> None:
        cfg = trainer.cfg
        self.bar = tqdm(total=cfg.epochs, initial=start_epoch, desc=f"{cfg.method}", disable=not self.show,
                        unit="ep", dynamic_ncols=True)

    def on_epoch_end(self, trainer: "Trainer", row: dict[str, Any]) -> None:
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{row['test_acc']:.3f}")
        if self.show:
            tqdm.write(f"epoch {row['epoch']}/{trainer.cfg.epochs}: train loss {row['train_loss']:.4f}, test acc "
                       f"{row['test_acc']:.4f}, |epoch| {row['epoch_examples']}, train {row['train_time']:.2f}s, "
                       f"selection {row['selection_time']:.2f}s", file=sys.stdout)

    def on_fit_end(self, trainer: "Trainer", results: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()


class TensorBoardObserver(Observer):
    """Streams each metrics row to TensorBoard (the diagnostics observer logs its rows to the same writer)."""

    def __init__(self, logger):
        self.logger = logger

    def on_epoch_end(self, trainer: "Trainer", row: dict[str, Any]) -> None:
        self.logger.log_epoch(row)

    def on_fit_end(self, trainer: "Trainer", results: dict[str, Any]) -> None:
        self.logger.close()


class EpochCallback(Observer):
    """Calls ``fn(row)`` with each finished metrics row (``train(..., on_epoch_end=fn)``)."""

    def __init__(self, fn: Callable[[dict[str, Any]], None]):
        self.fn = fn

    def on_epoch_end(self, trainer: "Trainer", row: dict[str, Any]) -> None:
        self.fn(row)


def default_observers(trainer: "Trainer", folder: "RunFolder", *, diag=None, tensorboard=None, show: bool = False,
                      on_epoch_end: Callable[[dict[str, Any]], None] | None = None) -> list[Observer]:
    """What ``coreaug train`` observes, in order: the forgetting history (history selectors), the
    diagnostics, metrics files, the checkpoint, progress, TensorBoard and the caller's callback."""
    observers: list[Observer] = []
    if trainer.tracker is not None:
        observers.append(ForgettingObserver())
    if diag is not None:
        observers.append(DiagnosticsObserver(diag, tensorboard.log_diagnostics if tensorboard is not None else None))
    if trainer.ctx.is_main:
        observers += [MetricsObserver(folder), CheckpointObserver(folder)]
    observers.append(ProgressObserver(show))
    if tensorboard is not None:
        observers.append(TensorBoardObserver(tensorboard))
    if on_epoch_end is not None:
        observers.append(EpochCallback(on_epoch_end))
    return observers
