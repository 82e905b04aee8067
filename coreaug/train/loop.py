"""One run of ``coreaug train``: the run folder around a :class:`~coreaug.train.trainer.Trainer`.

One call of :func:`train` is one run in one run folder (its layout, resume rules and results:
:class:`coreaug.runfolder.RunFolder`): lock it, decide how to start (fresh, from the checkpoint,
restart, or nothing to do for a finished run), load the data, build the Trainer, write
``config.json``, fit with the default observers (metrics, checkpoint, diagnostics, …), write
``results.json``.

The run folder is locked (:mod:`coreaug.runlock`, rank 0 under DDP) before anything in it is read or
written, for the whole run. A NaN/inf training loss stops the run with :class:`DivergenceError`
unless ``allow_nonfinite`` (the last good checkpoint stays).

Faithful to docs/paper-notes.md §3–§5: proxies come from an eval-mode, no-grad pass over all n training points
with the test-time transform, at epochs 0, R, 2R, …; strong-augmented copies of S are *appended*;
the loss is ``mean_i(w_i · CE_i)``.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from coreaug.augment import build_transform
from coreaug.data import ArrayDataset, DataBundle, load_data
from coreaug.device import default_threads
from coreaug.distributed import DistContext, barrier, broadcast_object, cleanup, setup_distributed
from coreaug.errors import ConfigError, CoreaugError, RunFolderBusyError
from coreaug.hooks import pause_point
from coreaug.runfolder import CHECKPOINT, RunFolder
from coreaug.runtime import derive_seed
from coreaug.train.checkpoint import read_checkpoint, warn_if_threads_differ, warn_if_workers_differ
from coreaug.train.config import TrainConfig, validate
from coreaug.train.diagnostics import TrainingDiagnostics
from coreaug.train.observers import Observer, default_observers
from coreaug.train.tensorboard import TensorBoardLogger
from coreaug.train.trainer import Trainer


#: In-memory datasets whose transformed copy fits this many bytes are transformed once up front for
#: evaluation passes (the test-time transform is deterministic), instead of image by image each pass.
EVAL_CACHE_BYTES = 2 * 2**30


def _eval_view(ds, test_t):
    """The test-time view of ``ds``: materialised once when it is in memory and small enough."""
    if isinstance(ds, ArrayDataset) and ds.images.numel() * 4 <= EVAL_CACHE_BYTES:
        return ds.materialize(test_t)
    return ds.with_transform(test_t)


def prepare_data(cfg: TrainConfig) -> tuple[DataBundle, dict[str, Any]]:
    """Load the dataset, inject label noise if asked, and build the weak / strong / test-time views."""
    bundle = load_data(cfg.dataset, cfg.data_root, image_size=cfg.image_size, resize=cfg.resize, **cfg.data_options)
    train_ds = bundle.train
    extra: dict[str, Any] = {}
    if cfg.label_noise > 0:
        from coreaug.data.noise import inject_symmetric_noise

        if not hasattr(train_ds, "with_targets"):
            raise ConfigError(f"dataset {cfg.dataset!r} does not support label noise (no with_targets)")
        noisy, flipped = inject_symmetric_noise(train_ds.targets, cfg.label_noise, bundle.num_classes,
                                                seed=derive_seed(cfg.seed, 7) % 2**31)
        train_ds = train_ds.with_targets(torch.as_tensor(noisy, dtype=torch.long))
        extra["flipped"] = torch.as_tensor(flipped, dtype=torch.bool)
    size = cfg.image_size or bundle.image_size
    # ImageFolder data vary in size: every view resizes first (bundle.extra["resize"]), so batches stack.
    resize = bundle.extra.get("resize", cfg.resize)
    common = dict(image_size=size, mean=bundle.mean, std=bundle.std, policy=cfg.aug_policy, noise_eps=cfg.noise_eps,
                  resize=resize)
    test_t = build_transform(**common, weak="none", strong="none")
    weak_t = build_transform(**common, weak=cfg.weak_aug, strong="none")
    strong_t = build_transform(**common, weak=cfg.weak_aug, strong=cfg.strong_aug)  # strong on top of weak (§2)
    views = {
        "weak": train_ds.with_transform(weak_t),
        "strong": train_ds.with_transform(strong_t),
        "eval_train": _eval_view(train_ds, test_t),  # proxies: un-augmented, test-time transform (§3.1)
        "test": _eval_view(bundle.test, test_t),
        **extra,
    }
    return bundle, views


@contextmanager
def _locked_run_folder(out: Path, ctx: DistContext):
    """Rank 0 holds the run-folder lock for the body; every rank learns if that failed and if the folder is new."""
    lock, failure = None, None
    if ctx.is_main:
        try:
            lock = RunFolder(out).lock()
        except CoreaugError as exc:
            failure = exc
    info = broadcast_object({"error": None if failure is None else str(failure),
                             "created": bool(lock is not None and lock.created_folder)}, ctx)
    if failure is not None:
        raise failure
    if info["error"] is not None:  # the other ranks stop with rank 0
        raise RunFolderBusyError(info["error"])
    try:
        yield info["created"]
    finally:
        if lock is not None:
            lock.release()


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    quiet: bool = False,
    stop_after_epoch: int | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    tensorboard: str | Path | None = None,
    observers: Sequence[Observer] = (),
) -> dict[str, Any]:
    """Run one experiment into ``out_dir`` and return the ``results.json`` content.

    Args:
        cfg: the configuration (validated again here).
        out_dir: the run folder; must be empty or absent unless ``resume``.
        resume: continue from ``out_dir/checkpoint.pt`` (same config hash required).
        quiet: no progress bars or per-epoch lines.
        stop_after_epoch: stop (as if killed) after this many epochs, leaving the checkpoint — for tests.
        on_epoch_end: called with each epoch's metrics row (rank 0).
        tensorboard: stream metrics and diagnostics to TensorBoard in this folder (needs ``tensorboard``).
        observers: more :class:`~coreaug.train.observers.Observer` s, called after the default ones (e.g. a
            gradient-norm logger); a field they return from ``row_fields`` joins ``metrics.jsonl``.

    Raises:
        ConfigError, DatasetNotFoundError, CheckpointError: before anything in ``out_dir`` is written.
    """
    cfg = validate(cfg)
    out = Path(out_dir)
    if tensorboard is not None:  # before the run folder is touched
        from coreaug.train.tensorboard import check_tensorboard_dir

        check_tensorboard_dir(tensorboard)
    threads_before = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    elif "OMP_NUM_THREADS" not in os.environ:  # an explicit OMP_NUM_THREADS (torchrun sets 1) wins
        torch.set_num_threads(default_threads(int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    ctx = setup_distributed(cfg.device)
    try:
        with _locked_run_folder(out, ctx) as created:
            return _train(cfg, out, ctx, resume=resume, quiet=quiet, stop_after_epoch=stop_after_epoch,
                          on_epoch_end=on_epoch_end, created=created, tensorboard=tensorboard, observers=observers)
    finally:
        cleanup(ctx)
        torch.set_num_threads(threads_before)


def _train(cfg: TrainConfig, out: Path, ctx: DistContext, *, resume: bool, quiet: bool,
           stop_after_epoch: int | None, on_epoch_end, created: bool = False, tensorboard=None,
           observers: Sequence[Observer] = ()) -> dict[str, Any]:
    device, main = ctx.device, ctx.is_main
    show = not quiet and main
    # -- everything that can fail on bad input happens before the first write --------------------
    folder = RunFolder(out)
    mode = folder.start_mode(resume, cfg, created=created)
    if mode == "finished":  # nothing to do; results.json and every other file stay as they were
        if main:
            print(f"coreaug: note: {out} holds a finished run (results.json, completed): nothing to resume",
                  file=sys.stderr)
        return folder.finished_results()
    checkpoint = read_checkpoint(out, config_hash=cfg.hash()) if mode == "checkpoint" else None
    if resume and checkpoint is None and main:
        print(f"coreaug: note: run folder {out} did not exist (the run stopped before creating it): starting the run"
              if created else
              f"coreaug: note: no {CHECKPOINT} in {out} (the run stopped before its first checkpoint): "
              "starting from epoch 0" + (" with its config.json" if mode == "restart" else ""), file=sys.stderr)
    if checkpoint is not None:
        warn_if_threads_differ(checkpoint, device)
    bundle, views = prepare_data(cfg)
    trainer = Trainer(cfg, ctx, show=show).build(bundle, views, checkpoint)
    diag = (TrainingDiagnostics.from_config(cfg, views, out, device, coreset=trainer.coreset)
            if cfg.diagnostics_every > 0 else None)
    if checkpoint is not None:
        warn_if_workers_differ(checkpoint, trainer.workers)
    barrier(ctx)  # every rank has checked the run folder before rank 0 writes into it
    if main:
        pause_point("run:locked")  # fault-injection tests: killed before config.json exists
        out.mkdir(parents=True, exist_ok=True)
        if checkpoint is None:
            folder.write_config(cfg)
    barrier(ctx)
    tb = TensorBoardLogger(tensorboard) if tensorboard is not None and main else None
    trainer.observers = default_observers(trainer, folder, diag=diag, tensorboard=tb, show=show,
                                          on_epoch_end=on_epoch_end) + list(observers)
    results = trainer.fit(out, stop_after_epoch=stop_after_epoch)
    if main and results["completed"]:
        folder.write_results(results)
    barrier(ctx)
    return results


#: Names this module had before the training-layer rework, and where they live now.
_MOVED = {"evaluate": "coreaug.train.trainer", "summarize": "coreaug.train.results",
          "weighted_batch_loss": "coreaug.train", "METRIC_FIELDS": "coreaug.train.observers"}


def __getattr__(name: str) -> Any:
    """``coreaug.train.loop.<name>`` for a name that moved (:data:`_MOVED`): returned, with a warning saying where
    to import it from."""
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    import warnings

    warnings.warn(f"coreaug.train.loop.{name} moved to {_MOVED[name]}; import it from there", DeprecationWarning,
                  stacklevel=2)
    return getattr(importlib.import_module(_MOVED[name]), name)
