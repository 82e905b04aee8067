"""The Trainer of ``coreaug train``: explicit phases (:meth:`Trainer.build`, :meth:`Trainer.train_one_epoch`,
:meth:`Trainer.evaluate`, :meth:`Trainer.fit`) with observers around the epochs (:mod:`coreaug.train.observers`).

What an epoch trains on — the regime, the selection every R epochs, the strong copies, dynamic
pruning — is the public API's :class:`~coreaug.api.AugmentedCoreset`; the Trainer owns the
process-level parts the API leaves to its caller: the model, optimiser and schedule, the per-epoch
global seeding that makes a resumed run replay exactly, AMP, DDP and the divergence check. The run
folder (lock, config.json, results.json) stays with :func:`coreaug.train.loop.train`.

Faithful to docs/paper-notes.md §3–§5: proxies from an eval-mode, no-grad pass with the test-time
transform at epochs 0, R, 2R, …; strong copies of S appended; the loss is ``mean_i(w_i · CE_i)``.
"""

from __future__ import annotations

import math
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from coreaug.api.epoch import WEAK
from coreaug.api.loss import per_example_loss, weighted_loss
from coreaug.distributed import DistContext, all_gather_object, all_reduce_sum, barrier
from coreaug.errors import DivergenceError
from coreaug.hooks import pause_armed, pause_point
from coreaug.runtime import Timer, derive_seed, seed_everything
from coreaug.train.config import OptimisationConfig, SelectionConfig, TrainConfig
from coreaug.train.cost import peak_memory_mb
from coreaug.train.results import selection_share, summarize
from coreaug.train.observers import Observer

__all__ = ["Trainer", "StepOutput", "EpochStats", "evaluate"]


@dataclass
class StepOutput:
    """One optimiser step, as observers see it (tensors on the training device, detached)."""

    index: torch.Tensor
    view: torch.Tensor
    logits: torch.Tensor
    y: torch.Tensor
    hit: torch.Tensor  # whether each example was classified correctly (logits.argmax(1) == y)
    loss: torch.Tensor | None = None  # the batch's weighted loss (a float64 scalar)


@dataclass
class EpochStats:
    """What :meth:`Trainer.train_one_epoch` measured (summed over DDP ranks)."""

    loss: float
    acc: float
    examples: int
    steps: int
    train_time: float
    selection_time: float
    reselected: bool
    epoch_examples: int
    subset_size: int
    lr: float


class Trainer:
    """One run's training: ``build`` → ``fit`` (``train_one_epoch`` + ``evaluate`` per epoch).

    Args:
        cfg: the validated configuration.
        ctx: where this process stands (rank, world size, device).
        observers: hooks around the epochs, called in order (see :mod:`coreaug.train.observers`).
        show: progress bars for the selection and the batches.
    """

    def __init__(self, cfg: TrainConfig, ctx: DistContext, *, observers: Sequence[Observer] = (), show: bool = False):
        self.cfg, self.ctx, self.device, self.show = cfg, ctx, ctx.device, show
        self.observers = list(observers)
        self.rows: list[dict[str, Any]] = []
        self.start_epoch = 0

    # -- build -----------------------------------------------------------------------------------
    def build(self, bundle, views: dict[str, Any], checkpoint: dict[str, Any] | None = None) -> "Trainer":
        """Model (seeded init), optimiser, schedule, AMP, the coreset schedule and the forgetting
        history; restored from ``checkpoint`` when resuming (RNG state included)."""
        from coreaug.device import resolve_num_workers
        from coreaug.models import build_model
        from coreaug.train.checkpoint import set_rng_state
        from coreaug.train.subsets import coreset_for

        cfg, device = self.cfg, self.device
        self.bundle, self.views = bundle, views
        seed_everything(cfg.seed)
        if cfg.weights is None and cfg.dataset == "caltech256":
            warnings.warn("caltech256 preset fine-tunes an ImageNet-pretrained model: pass --weights PATH", stacklevel=2)
        self.raw_model = build_model(cfg.model, bundle.num_classes, in_channels=bundle.in_channels,
                                     image_size=cfg.image_size or bundle.image_size,
                                     weights_path=cfg.weights).to(device)
        self.optimizer = _optimizer(cfg.optimisation, self.raw_model.parameters())
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=cfg.milestones,
                                                              gamma=cfg.lr_gamma)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        if checkpoint is not None:
            self.raw_model.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.scheduler.load_state_dict(checkpoint["scheduler"])
            self.scaler.load_state_dict(checkpoint["scaler"])
            set_rng_state(checkpoint["rng"])
            self.rows = list(checkpoint["metrics"])
            self.start_epoch = int(checkpoint["epoch"])
        self.tracker = _forgetting_tracker(cfg.selection, len(views["eval_train"]), checkpoint)
        self.workers = resolve_num_workers(cfg.num_workers, device)
        # the public API's schedule: selection, regime, epoch composition and the loader (one pipeline)
        self.coreset = coreset_for(cfg, views["weak"], views["strong"], views["eval_train"], num_workers=self.workers,
                                   history=self.tracker, num_classes=bundle.num_classes)
        if checkpoint is not None and checkpoint["subset"] is not None:
            self.coreset.load_state_dict(checkpoint["subset"])
        self.model: nn.Module = self.raw_model
        if self.ctx.enabled:
            self.model = nn.parallel.DistributedDataParallel(
                self.raw_model, device_ids=[device.index] if device.type == "cuda" else None)
        return self

    def _amp_dtype(self) -> torch.dtype | None:
        if not self.cfg.amp:
            return None
        if self.device.type != "cuda":
            warnings.warn("--amp has no effect on CPU; training in float32", stacklevel=3)
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    # -- one epoch -------------------------------------------------------------------------------
    def _select(self, epoch: int) -> tuple[float, bool]:
        """Reselect if due (every rank takes part and gets the same S, γ); return (seconds, reselected)."""
        coreset, ctx = self.coreset, self.ctx
        if not coreset.due(epoch):
            return 0.0, False
        with Timer(self.device) as t:
            with tqdm(total=1, desc="selection", leave=False, disable=not self.show) as bar:
                coreset.select(self.raw_model, epoch, device=self.device, ctx=ctx)
                bar.update(1)
        if ctx.enabled:  # every rank must train on the same selection
            digests = all_gather_object(hash((tuple(coreset.indices.tolist()), tuple(coreset.weights.tolist()))), ctx)
            if len(set(digests)) != 1:
                raise RuntimeError("DDP ranks disagree on the selected subset")
        return t.elapsed, True

    def train_one_epoch(self, epoch: int) -> EpochStats:
        """Reselect when due, then one pass over the epoch's batches (weighted loss, AMP, DDP)."""
        cfg, device, coreset = self.cfg, self.device, self.coreset
        # per-epoch seeding: every epoch's randomness is a function of (seed, epoch); a resume replays it
        seed_everything(derive_seed(cfg.seed, epoch, 0))
        sel_time, reselected = self._select(epoch)
        loader = coreset.loader(self.raw_model, epoch, batch_size=cfg.batch_size, num_workers=self.workers,
                                pin_memory=device.type == "cuda", with_index=True, ctx=self.ctx)
        plan = loader.plan  # the composition the loader draws from (pruning decided once per epoch)
        lr = self.optimizer.param_groups[0]["lr"]
        self.model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        count, steps = 0, 0
        pause = pause_armed("train:step")  # fault-injection tests only: not looked up every step
        with Timer(device) as t:
            for x, y, w, idx, view in tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not self.show,
                                          dynamic_ncols=True):
                out = self._step(x, y, w, idx, view)
                loss_sum += out.loss * y.numel()
                correct += out.hit.sum()
                for obs in self.observers:
                    obs.on_batch_end(self, out)
                count += int(y.numel())
                steps += 1
                if pause:
                    pause_point("train:step")
                if not cfg.allow_nonfinite and not self.ctx.enabled and steps % 50 == 0 and not torch.isfinite(loss_sum):
                    raise self._divergence(epoch, float(loss_sum))  # (DDP: checked after the all-reduce)
            self.scheduler.step()
        for obs in self.observers:
            obs.on_train_epoch_end(self, epoch)
        coreset.sync(self.ctx)  # every rank's recorded losses → the pruning scores (before the checkpoint)
        loss_total, correct_total, count_total = all_reduce_sum([float(loss_sum), float(correct), float(count)],
                                                                self.ctx)
        if not cfg.allow_nonfinite and not math.isfinite(loss_total):
            raise self._divergence(epoch, loss_total)  # before this epoch's checkpoint: the last good one stays
        return EpochStats(loss_total / max(count_total, 1), correct_total / max(count_total, 1), int(count_total),
                          steps, t.elapsed, sel_time, reselected, len(plan),
                          plan.subset_size if cfg.uses_subset else 0, lr)

    def _step(self, x, y, w, idx, view) -> "StepOutput":
        """One optimiser step on a batch (weighted loss, AMP); dynamic pruning records its per-example losses."""
        device, coreset = self.device, self.coreset
        x, y, w = (v.to(device, non_blocking=True) for v in (x, y, w))
        with torch.autocast("cuda", dtype=self.amp_dtype) if self.amp_dtype is not None else nullcontext():
            logits = self.model(x)
            # dynamic pruning scores examples by the losses training sees (main-view copies)
            pe = per_example_loss(logits, y) if coreset.pruning is not None else None
            loss = weighted_loss(logits, y, w, per_example=pe)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if pe is not None:
            main = (view == WEAK).nonzero().flatten()  # on the CPU: a boolean mask on CUDA would sync every step
            coreset.record(idx[main], losses=pe.detach().index_select(0, main.to(device, non_blocking=True)))
        hit = logits.detach().argmax(1) == y  # per example, for the accuracy and the observers
        return StepOutput(idx, view, logits.detach(), y, hit, loss.detach().double())

    def _divergence(self, epoch: int, value: float) -> DivergenceError:
        kept = (f"the last good checkpoint (epoch {self.rows[-1]['epoch']}) is kept" if self.rows
                else "no checkpoint was written")
        return DivergenceError(f"training loss became {value} in epoch {epoch + 1}: stopped, {kept} in {self.out}; "
                               "lower --lr, or pass --allow-nonfinite to keep training")

    # -- evaluation ------------------------------------------------------------------------------
    def evaluate(self) -> tuple[float, float, float, float]:
        """Test loss, accuracy, balanced accuracy (rank 0; zeros elsewhere) and the seconds it took."""
        from coreaug.device import resolve_eval_batch_size

        with Timer(self.device) as t:
            if not self.ctx.is_main:
                return 0.0, 0.0, 0.0, 0.0
            res = evaluate(self.raw_model, self.views["test"], device=self.device, amp_dtype=self.amp_dtype,
                           batch_size=resolve_eval_batch_size(self.cfg.eval_batch_size, self.device),
                           num_classes=self.bundle.num_classes)
        return (*res, t.elapsed)

    # -- the run ---------------------------------------------------------------------------------
    def fit(self, out: Path, *, stop_after_epoch: int | None = None) -> dict[str, Any]:
        """Train from ``start_epoch`` to ``cfg.epochs`` (or stop after ``stop_after_epoch``, as if killed);
        return the ``results.json`` content (written by the caller)."""
        cfg, ctx = self.cfg, self.ctx
        self.out = out
        for obs in self.observers:
            obs.on_fit_start(self, self.start_epoch)
        barrier(ctx)
        elapsed0 = self.rows[-1]["elapsed"] if self.rows else 0.0
        wall0 = self.rows[-1]["wall_clock"] if self.rows else 0.0
        t_start = time.perf_counter()
        completed = True
        for epoch in range(self.start_epoch, cfg.epochs):
            stats = self.train_one_epoch(epoch)
            test_loss, test_acc, test_bal, eval_time = self.evaluate()
            row = self._row(epoch, stats, (test_loss, test_acc, test_bal, eval_time), wall0)
            for obs in self.observers:
                row.update(obs.row_fields(self, epoch))
            row["elapsed"] = elapsed0 + (time.perf_counter() - t_start)
            wall0 = row["wall_clock"]
            self.rows.append(row)
            if ctx.is_main:
                for obs in self.observers:
                    obs.on_epoch_end(self, row)
            barrier(ctx)
            if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < cfg.epochs:
                completed = False
                break
        results = summarize(cfg, self.rows, device=self.device, world_size=ctx.world_size, completed=completed,
                            n_train=len(self.views["eval_train"]))
        for obs in self.observers:
            obs.on_fit_end(self, results)
        return results

    def _row(self, epoch: int, s: EpochStats, test: tuple[float, float, float, float], wall0: float
             ) -> dict[str, Any]:
        """The epoch's metrics row (observers add their fields)."""
        test_loss, test_acc, test_bal, eval_time = test
        sel = self.coreset.selection
        weights = self.coreset.weights
        return {
            "epoch": epoch + 1, "lr": s.lr, "train_loss": s.loss, "train_acc": s.acc,
            "test_loss": test_loss, "test_acc": test_acc, "test_balanced_acc": test_bal,
            "train_time": s.train_time, "selection_time": s.selection_time, "eval_time": eval_time,
            "epoch_time": s.train_time + s.selection_time, "wall_clock": wall0 + s.train_time + s.selection_time,
            "elapsed": 0.0, "subset_size": s.subset_size,  # elapsed: set by fit after the observers
            # largest γ of the current selection (mean 1): a few heavy points make SGD steps large
            "subset_weight_max": float(weights.max()) if weights is not None and weights.numel() else None,
            "epoch_examples": s.epoch_examples, "reselected": s.reselected, "steps": s.steps,
            # share of this epoch's train + selection wall-clock spent selecting (evaluation excluded)
            "selection_share": selection_share(s.selection_time, s.train_time),
            "diagnostics_time": 0.0, "diag_examples": 0,
            # cost in example-passes (all ranks): training forward + backward, the proxy pass's forwards
            "fwd_train": s.examples, "bwd_train": s.examples,
            "fwd_proxy": sel.forward_passes if s.reselected and sel is not None else 0,
            "peak_mem_mb": peak_memory_mb(self.device),
        }


def _optimizer(opt: OptimisationConfig, params) -> torch.optim.Optimizer:
    """``opt.optimizer``: SGD with momentum (the paper's) or AdamW (decoupled weight decay, default betas)."""
    if opt.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=opt.lr, weight_decay=opt.weight_decay)
    return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay,
                           nesterov=opt.nesterov)


def _forgetting_tracker(selection: SelectionConfig, n: int, checkpoint: dict[str, Any] | None):
    """A :class:`~coreaug.select.ForgettingTracker` when the selector needs the training history
    (restored from the checkpoint on resume), else ``None``."""
    from coreaug.select import ForgettingTracker, get_selector

    if not selection.uses_subset or "history" not in get_selector(selection.selector).needs:
        return None
    tracker = ForgettingTracker(n)
    if checkpoint is not None and checkpoint.get("forgetting") is not None:
        tracker.load_state_dict(checkpoint["forgetting"])
    return tracker


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
