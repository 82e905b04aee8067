"""The training loop: reselect every R epochs, build the epoch's appended set, weighted SGD, evaluate, checkpoint.

One call of :func:`train` is one run; it owns its run folder::

    RUN_DIR/config.json      resolved configuration (written once, before the first epoch)
    RUN_DIR/metrics.csv      one row per epoch (also metrics.jsonl)
    RUN_DIR/checkpoint.pt    written atomically after every epoch; ``resume=True`` continues from it
    RUN_DIR/results.json     final/best accuracy, time totals (written when the run completes)
    RUN_DIR/diagnostics.csv  spectral diagnostics every K epochs (also diagnostics.jsonl), when enabled

The run folder is locked (:mod:`coreaug.runlock`, rank 0 under DDP) before anything in it is read or
written, for the whole run. A NaN/inf training loss stops the run with :class:`DivergenceError`
unless ``allow_nonfinite`` (the last good checkpoint stays).

Faithful to docs/paper-notes.md §3–§5: proxies come from an eval-mode, no-grad pass over all n training points
with the test-time transform, at epochs 0, R, 2R, …; strong-augmented copies of S are *appended*;
the loss is ``mean_i(w_i · CE_i)``.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from coreaug.augment import build_transform
from coreaug.data import ArrayDataset, DataBundle, load_data
from coreaug.device import default_threads, resolve_eval_batch_size, resolve_num_workers
from coreaug.errors import CheckpointError, ConfigError, CoreaugError, DivergenceError, RunFolderBusyError
from coreaug.hooks import pause_point
from coreaug.io import csv_text, dumps_json, write_json_atomic, write_text_atomic
from coreaug.models import build_model
from coreaug.runlock import acquire_run_lock, is_run_file
from coreaug.train.checkpoint import (
    CHECKPOINT_NAME, finished_results, read_checkpoint, rng_state, set_rng_state, warn_if_threads_differ,
    write_checkpoint,
)
from coreaug.train.config import TrainConfig, config_from_dict, read_config_file, validate
from coreaug.distributed import (
    DistContext, all_gather_object, all_reduce_sum, barrier, broadcast_object, cleanup, setup_distributed,
)
from coreaug.api.epoch import WEAK
from coreaug.api.loss import per_example_loss, weighted_loss as weighted_batch_loss
from coreaug.runtime import Timer, derive_seed, seed_everything
from coreaug.train.cost import cost_totals, peak_memory_mb
from coreaug.train.diagnostics import TrainingDiagnostics
from coreaug.train.subsets import coreset_for
from coreaug.train.tensorboard import TensorBoardLogger, require_tensorboard

METRIC_FIELDS: tuple[str, ...] = (
    "epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "test_balanced_acc", "train_time", "selection_time",
    "eval_time", "epoch_time", "wall_clock", "elapsed", "subset_size", "subset_weight_max", "epoch_examples",
    "reselected", "steps", "selection_share",
    "diagnostics_time",  # spectral diagnostics (coreaug.train.diagnostics); not in train/selection/wall_clock
    "fwd_train", "bwd_train", "fwd_proxy", "diag_examples", "peak_mem_mb",  # cost (coreaug.train.cost)
)


@torch.no_grad()
def evaluate(model: nn.Module, dataset, *, batch_size: int, device: torch.device, amp_dtype=None,
             num_classes: int | None = None) -> tuple[float, float, float]:
    """Mean cross-entropy, accuracy and class-balanced accuracy (mean per-class recall; the official
    Caltech256 metric) of ``model`` on ``dataset`` (eval mode, restored afterwards)."""
    was_training = model.training
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    loss_sum, preds, labels = 0.0, [], []
    try:
        for x, y, _ in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            ctx = torch.autocast("cuda", dtype=amp_dtype) if amp_dtype is not None else nullcontext()
            with ctx:
                out = model(x)
            loss_sum += float(F.cross_entropy(out.float(), y, reduction="sum"))
            preds.append(out.argmax(1).cpu())
            labels.append(y.cpu())
    finally:
        model.train(was_training)
    if not labels:
        return 0.0, 0.0, 0.0
    p, y = torch.cat(preds), torch.cat(labels)
    hit = (p == y).double()
    c = int(num_classes or int(y.max()) + 1)
    per_class_n = torch.bincount(y, minlength=c).double()
    per_class_hit = torch.bincount(y, weights=hit, minlength=c)
    present = per_class_n > 0
    balanced = float((per_class_hit[present] / per_class_n[present]).mean())
    return loss_sum / y.numel(), float(hit.mean()), balanced


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
        try:
            from coreaug.data.noise import inject_symmetric_noise
        except ImportError as exc:  # pragma: no cover - depends on another module landing
            raise ConfigError(f"label noise is unavailable: {exc}") from None
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
            lock = acquire_run_lock(out)
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


#: The files a run writes into its folder (checked to be files, where present, before a resume starts).
_RUN_FILE_NAMES: tuple[str, ...] = (CHECKPOINT_NAME, "config.json", "metrics.csv", "metrics.jsonl", "results.json",
                                    "diagnostics.csv", "diagnostics.jsonl")


def _check_run_dir(out: Path, resume: bool, cfg: TrainConfig, *, created: bool) -> str:
    """How to start (the folder is locked): ``"fresh"``, ``"checkpoint"`` (resume), ``"restart"``
    (``resume`` of a run stopped before its first checkpoint: epoch 0 with the same config) or
    ``"finished"`` (``resume`` of a completed run of this config: nothing to do, nothing is written).

    ``resume`` into a folder that did not exist (``created``) starts the run: the earlier run was stopped
    before it even created the folder (README: rerun the original command with ``--resume``)."""
    entries = [p.name for p in out.iterdir() if is_run_file(p.name)]
    if not resume:
        if entries:
            raise ConfigError(f"run folder {out} is not empty; pass --resume to continue it or choose another --out")
        return "fresh"
    if created:
        return "fresh"
    done = finished_results(out)
    if done is not None and done.get("config_hash") == cfg.hash():
        return "finished"
    for name in _RUN_FILE_NAMES:  # a folder in place of a run file would fail only after an epoch of work
        if (out / name).exists() and not (out / name).is_file():
            raise CheckpointError(f"cannot resume: {out / name} is not a file; move it away and pass --resume again")
    checkpoint = out / CHECKPOINT_NAME
    if checkpoint.is_file():
        return "checkpoint"
    saved = out / "config.json"
    if saved.is_file():
        try:
            saved_hash = config_from_dict(read_config_file(saved)).hash()
        except ConfigError as exc:
            raise CheckpointError(f"cannot resume from {out}: {exc}") from None
        if saved_hash != cfg.hash():
            raise CheckpointError(f"{saved} was written by another configuration (hash {saved_hash} != {cfg.hash()}); "
                                  "use the same settings or a new --out folder")
        return "restart"
    if not entries:  # the earlier run stopped before writing config.json
        return "fresh"
    raise CheckpointError(f"cannot resume: no {CHECKPOINT_NAME} or config.json in {out}")


def _divergence(epoch: int, value: float, rows: list[dict[str, Any]], out: Path) -> DivergenceError:
    kept = (f"the last good checkpoint (epoch {rows[-1]['epoch']}) is kept" if rows
            else "no checkpoint was written")
    return DivergenceError(f"training loss became {value} in epoch {epoch + 1}: stopped, {kept} in {out}; "
                           "lower --lr, or pass --allow-nonfinite to keep training")


def _write_metrics(out: Path, rows: list[dict[str, Any]]) -> None:
    write_text_atomic(out / "metrics.csv", csv_text(rows, METRIC_FIELDS))
    write_text_atomic(out / "metrics.jsonl", "".join(dumps_json(r) + "\n" for r in rows))  # strict: NaN -> null


def _share(selection: float, train: float) -> float:
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
        "selection_share": _share(sum(r["selection_time"] for r in rows), sum(r["train_time"] for r in rows)),
        "proxy_pool": cfg.proxy_pool if cfg.uses_subset and cfg.selector != "random" else None,
        "diagnostics_time_total": sum(r.get("diagnostics_time") or 0.0 for r in rows),
        "wall_clock_total": rows[-1]["wall_clock"] if rows else 0.0,
        "elapsed_total": rows[-1]["elapsed"] if rows else 0.0,
        "examples_seen_total": sum(r["epoch_examples"] for r in rows),
        "steps_total": sum(r["steps"] for r in rows),
        "mean_subset_size": (sum(r["subset_size"] for r in rows) / len(rows)) if rows else 0.0,
        "n_selections": sum(1 for r in rows if r["reselected"]),
        **cost_totals(cfg, rows, n_train),
        "config_hash": cfg.hash(), "device": str(device), "world_size": world_size,
        "torch": torch.__version__, "host": platform.node(),
    }


def _diagnose(diag: TrainingDiagnostics, model: nn.Module, epoch: int, tb: TensorBoardLogger | None,
              history=None) -> float:
    """Run the spectral diagnostics of ``model`` after ``epoch`` epochs; return their wall-clock."""
    drow = diag.run(model, epoch, history=history)
    if tb is not None:
        tb.log_diagnostics(drow)
    return float(drow["time"])


def _forgetting_tracker(cfg: TrainConfig, n: int, checkpoint: dict[str, Any] | None):
    """A :class:`~coreaug.select.ForgettingTracker` when the selector needs the training history
    (restored from the checkpoint on resume), else ``None``."""
    from coreaug.select import ForgettingTracker, get_selector

    if not cfg.uses_subset or "history" not in get_selector(cfg.selector).needs:
        return None
    tracker = ForgettingTracker(n)
    if checkpoint is not None and checkpoint.get("forgetting") is not None:
        tracker.load_state_dict(checkpoint["forgetting"])
    return tracker


def _record_forgetting(tracker, seen_idx: list[torch.Tensor], seen_hit: list[torch.Tensor], ctx: DistContext) -> None:
    """Add one epoch's outcomes, in presentation order, to the history (under DDP: every rank's, in
    rank order, so each rank holds the same history)."""
    idx = torch.cat(seen_idx) if seen_idx else torch.empty(0, dtype=torch.long)
    hit = torch.cat(seen_hit).cpu() if seen_hit else torch.empty(0, dtype=torch.bool)
    parts = all_gather_object((idx, hit), ctx) if ctx.enabled else [(idx, hit)]
    for part_idx, part_hit in parts:
        tracker.update(part_idx, part_hit)


def train(
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    quiet: bool = False,
    stop_after_epoch: int | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    tensorboard: str | Path | None = None,
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
                          on_epoch_end=on_epoch_end, created=created, tensorboard=tensorboard)
    finally:
        cleanup(ctx)
        torch.set_num_threads(threads_before)


def _train(cfg: TrainConfig, out: Path, ctx: DistContext, *, resume: bool, quiet: bool,
           stop_after_epoch: int | None, on_epoch_end, created: bool = False, tensorboard=None) -> dict[str, Any]:
    device, main = ctx.device, ctx.is_main
    show = not quiet and main
    # -- everything that can fail on bad input happens before the first write --------------------
    mode = _check_run_dir(out, resume, cfg, created=created)
    if mode == "finished":  # nothing to do; results.json and every other file stay as they were
        if main:
            print(f"coreaug: note: {out} holds a finished run (results.json, completed): nothing to resume",
                  file=sys.stderr)
        return finished_results(out)
    checkpoint = read_checkpoint(out, config_hash=cfg.hash()) if mode == "checkpoint" else None
    if resume and checkpoint is None and main:
        print(f"coreaug: note: run folder {out} did not exist (the run stopped before creating it): starting the run"
              if created else
              f"coreaug: note: no {CHECKPOINT_NAME} in {out} (the run stopped before its first checkpoint): "
              "starting from epoch 0" + (" with its config.json" if mode == "restart" else ""), file=sys.stderr)
    if checkpoint is not None:
        warn_if_threads_differ(checkpoint, device)
    bundle, views = prepare_data(cfg)
    n = len(views["eval_train"])
    diag = TrainingDiagnostics(cfg, views, out, device) if cfg.diagnostics_every > 0 else None
    if tensorboard is not None:
        require_tensorboard()
    seed_everything(cfg.seed)
    if cfg.weights is None and cfg.dataset == "caltech256":
        warnings.warn("caltech256 preset fine-tunes an ImageNet-pretrained model: pass --weights PATH", stacklevel=2)
    raw_model = build_model(cfg.model, bundle.num_classes, in_channels=bundle.in_channels,
                            image_size=cfg.image_size or bundle.image_size, weights_path=cfg.weights).to(device)
    optimizer = torch.optim.SGD(raw_model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.milestones, gamma=cfg.lr_gamma)
    amp_dtype = None
    if cfg.amp:
        if device.type == "cuda":
            amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            warnings.warn("--amp has no effect on CPU; training in float32", stacklevel=2)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    rows: list[dict[str, Any]] = []
    start_epoch = 0
    if checkpoint is not None:
        raw_model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        set_rng_state(checkpoint["rng"])
        rows = list(checkpoint["metrics"])
        start_epoch = int(checkpoint["epoch"])
    tracker = _forgetting_tracker(cfg, n, checkpoint)  # None unless the selector reads the training history
    workers = resolve_num_workers(cfg.num_workers, device)
    # the public API's schedule: selection, regime, epoch composition and the loader (one pipeline)
    coreset = coreset_for(cfg, views["weak"], views["strong"], views["eval_train"], num_workers=workers,
                          history=tracker, num_classes=bundle.num_classes)
    if checkpoint is not None and checkpoint["subset"] is not None:
        coreset.load_state_dict(checkpoint["subset"])
    model: nn.Module = raw_model
    if ctx.enabled:
        model = nn.parallel.DistributedDataParallel(
            raw_model, device_ids=[device.index] if device.type == "cuda" else None)
    barrier(ctx)  # every rank has checked the run folder before rank 0 writes into it
    if main:
        pause_point("run:locked")  # fault-injection tests: killed before config.json exists
        out.mkdir(parents=True, exist_ok=True)
        if checkpoint is None:
            write_json_atomic(out / "config.json", cfg.to_dict())
    barrier(ctx)
    tb = TensorBoardLogger(tensorboard) if tensorboard is not None and main else None
    diag_pending = 0.0  # diagnostics seconds not yet reported in a metrics row (the epoch-0 diagnostic)
    if diag is not None and main:
        diag.resume(start_epoch)
        if diag.due(start_epoch):
            diag_pending = _diagnose(diag, raw_model, start_epoch, tb, tracker)
    barrier(ctx)

    elapsed0 = rows[-1]["elapsed"] if rows else 0.0
    wall0 = rows[-1]["wall_clock"] if rows else 0.0
    t_start = time.perf_counter()
    epochs_bar = tqdm(range(start_epoch, cfg.epochs), desc=f"{cfg.method}", initial=start_epoch,
                      total=cfg.epochs, disable=not show, unit="ep", dynamic_ncols=True)
    for epoch in epochs_bar:
        # Per-epoch seeding makes every epoch's randomness (augmentations, shuffling, random
        # subsets) a function of (seed, epoch) only: a resumed run replays exactly.
        seed_everything(derive_seed(cfg.seed, epoch, 0))
        reselected, sel_time = False, 0.0
        if coreset.due(epoch):
            with Timer(device) as t:
                # every rank takes part (sharded proxy pass, classes split) and gets the same (S, γ)
                with tqdm(total=1, desc="selection", leave=False, disable=not show) as sbar:
                    coreset.select(raw_model, epoch, device=device, ctx=ctx)
                    sbar.update(1)
            sel_time, reselected = t.elapsed, True
            if ctx.enabled:  # every rank must train on the same selection
                digests = all_gather_object(hash((tuple(coreset.indices.tolist()),
                                                  tuple(coreset.weights.tolist()))), ctx)
                if len(set(digests)) != 1:
                    raise RuntimeError("DDP ranks disagree on the selected subset")
        loader = coreset.loader(raw_model, epoch, batch_size=cfg.batch_size, num_workers=workers,
                                pin_memory=device.type == "cuda", with_index=True, ctx=ctx)
        plan = coreset.plan(epoch)
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        count, steps = 0, 0
        seen_idx: list[torch.Tensor] = []
        seen_hit: list[torch.Tensor] = []
        with Timer(device) as t:
            for x, y, w, idx, view in tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not show,
                                      dynamic_ncols=True):
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                w = w.to(device, non_blocking=True)
                with torch.autocast("cuda", dtype=amp_dtype) if amp_dtype is not None else nullcontext():
                    logits = model(x)
                    # dynamic pruning scores examples by the losses training sees (main-view copies)
                    pe = per_example_loss(logits, y) if coreset.pruning is not None else None
                    loss = weighted_batch_loss(logits, y, w, per_example=pe)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                loss_sum += loss.detach().double() * y.numel()
                correct += (logits.detach().argmax(1) == y).sum()
                if pe is not None:
                    coreset.record(idx[view == WEAK], losses=pe.detach()[(view == WEAK).to(device)])
                if tracker is not None:  # forgetting events: outcomes of the main (weak-view) copies
                    main_view = view == WEAK
                    seen_idx.append(idx[main_view])
                    seen_hit.append((logits.detach().argmax(1) == y)[main_view.to(device)])  # no host sync here
                count += int(y.numel())
                steps += 1
                pause_point("train:step")
                if not cfg.allow_nonfinite and not ctx.enabled and steps % 50 == 0 and not torch.isfinite(loss_sum):
                    raise _divergence(epoch, float(loss_sum), rows, out)  # (DDP: checked after the all-reduce)
            scheduler.step()
        train_time = t.elapsed
        if tracker is not None:
            _record_forgetting(tracker, seen_idx, seen_hit, ctx)
        coreset.sync(ctx)  # every rank's recorded losses → the pruning scores (before the checkpoint)
        loss_total, correct_total, count_total = all_reduce_sum([float(loss_sum), float(correct), float(count)], ctx)
        if not cfg.allow_nonfinite and not math.isfinite(loss_total):
            raise _divergence(epoch, loss_total, rows, out)  # before this epoch's checkpoint: the last good one stays
        with Timer(device) as t:
            test_loss, test_acc, test_bal_acc = (
                evaluate(raw_model, views["test"], batch_size=resolve_eval_batch_size(cfg.eval_batch_size, device),
                         device=device,
                         amp_dtype=amp_dtype, num_classes=bundle.num_classes) if main else (0.0, 0.0, 0.0))
        eval_time = t.elapsed
        diag_time, diag_pending, diag_runs = diag_pending, 0.0, int(diag_pending > 0)
        if diag is not None and main and diag.due(epoch + 1):  # rank 0 only; the others wait at the barrier
            diag_time += _diagnose(diag, raw_model, epoch + 1, tb, tracker)
            diag_runs += 1
        row = {
            "epoch": epoch + 1, "lr": lr,
            "train_loss": loss_total / max(count_total, 1), "train_acc": correct_total / max(count_total, 1),
            "test_loss": test_loss, "test_acc": test_acc, "test_balanced_acc": test_bal_acc,
            "train_time": train_time, "selection_time": sel_time, "eval_time": eval_time,
            "epoch_time": train_time + sel_time, "wall_clock": wall0 + train_time + sel_time,
            "elapsed": elapsed0 + (time.perf_counter() - t_start),
            "subset_size": plan.subset_size if cfg.uses_subset else 0,
            # largest γ of the current selection (mean 1): a few heavy points make SGD steps large
            "subset_weight_max": float(coreset.weights.max()) if coreset.weights is not None
            and coreset.weights.numel() else None,
            "epoch_examples": len(plan), "reselected": reselected, "steps": steps,
            # share of this epoch's train + selection wall-clock spent selecting (evaluation excluded)
            "selection_share": _share(sel_time, train_time),
            "diagnostics_time": diag_time,
            # cost in example-passes (all ranks): training forward + backward, the proxy pass's forwards
            "fwd_train": int(count_total), "bwd_train": int(count_total),
            "fwd_proxy": coreset.selection.forward_passes if reselected else 0,
            "diag_examples": diag.n * diag_runs if diag is not None else 0,
            "peak_mem_mb": peak_memory_mb(device),
        }
        wall0 = row["wall_clock"]
        rows.append(row)
        if main:
            _write_metrics(out, rows)
            write_checkpoint(out, {
                "config_hash": cfg.hash(), "config": cfg.to_dict(), "epoch": epoch + 1,
                "model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": rng_state(),
                "subset": coreset.state_dict(), "metrics": rows,
                "forgetting": tracker.state_dict() if tracker is not None else None,
            })
            pause_point("epoch:end")  # fault-injection tests: killed right after a checkpoint
            epochs_bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{test_acc:.3f}")
            if show:
                tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f}, test acc "
                           f"{test_acc:.4f}, |epoch| {row['epoch_examples']}, train {train_time:.2f}s, "
                           f"selection {sel_time:.2f}s")
            if tb is not None:
                tb.log_epoch(row)
            if on_epoch_end is not None:
                on_epoch_end(row)
        barrier(ctx)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < cfg.epochs:
            epochs_bar.close()
            if tb is not None:
                tb.close()
            return summarize(cfg, rows, device=device, world_size=ctx.world_size, completed=False, n_train=n)
    epochs_bar.close()
    if tb is not None:
        tb.close()
    results = summarize(cfg, rows, device=device, world_size=ctx.world_size, completed=True, n_train=n)
    if main:
        write_json_atomic(out / "results.json", results)
    barrier(ctx)
    return results
