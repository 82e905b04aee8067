"""Augmented coresets in the Hugging Face ``transformers.Trainer`` (extra ``[hf]``).

::

    import coreaug
    from coreaug.integrations.hf import AugmentedCoresetTrainer

    coreset = coreaug.AugmentedCoreset(train_rows, items=coreaug.DictItems("pixel_values", "label"),
                                       strong=strong_tf, fraction=0.1, reselect_every=5, head=model.classifier)
    trainer = AugmentedCoresetTrainer(model=model, args=TrainingArguments(...), coreset=coreset)
    trainer.train()

**Design.** ``Trainer.train()`` builds the train dataloader once, calls its ``set_epoch(epoch)`` and
then ``iter()`` at the start of every epoch, and sizes the run (``max_steps``, the LR schedule,
progress) from its ``len()``. :meth:`AugmentedCoresetTrainer.get_train_dataloader` returns a
:class:`CoresetTrainLoader` whose ``iter()`` asks the coreset for that epoch's loader (reselecting at
epochs 0, R, 2R, … with the model as it is then) and whose ``len()`` is
``coreset.steps_per_epoch(per_device_train_batch_size, world_size=args.world_size)`` — the same every
epoch. Each batch is a dict ``{input_key: x, "labels": y, "coreaug_weights": w}``;
:meth:`AugmentedCoresetTrainer.compute_loss` calls the model on the inputs without the labels and
returns ``coreaug.weighted_loss(outputs, labels, weights)`` (a per-batch mean: gradient accumulation
divides it as for any loss). Batches without weights (evaluation) get the Trainer's own loss.
Under ``torch.distributed`` the API shards each epoch itself (one seed on every rank) and the
selection is sharded, so the loader is not passed through ``accelerator.prepare``.

**Checkpoints.** Every checkpoint folder also holds ``coreaug_coreset.pt`` (the coreset's
``state_dict``); ``train(resume_from_checkpoint=...)`` restores it, so the resumed run trains on the
same selections.
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Iterator

import torch
from torch import nn

from coreaug.api.coreset import AugmentedCoreset
from coreaug.api.items import DictItems
from coreaug.api.loss import weighted_loss
from coreaug.errors import ConfigError
from coreaug.integrations import missing_extra

try:
    import transformers
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
except ImportError:
    raise missing_extra("transformers", "hf") from None

__all__ = ["AugmentedCoresetTrainer", "CORESET_STATE", "CoresetTrainLoader", "WEIGHTS_KEY"]

WEIGHTS_KEY = "coreaug_weights"  #: the batch key of the loss weights
CORESET_STATE = "coreaug_coreset.pt"  #: the coreset's state in each checkpoint folder


class CoresetTrainLoader:
    """The train "dataloader" of :class:`AugmentedCoresetTrainer`: ``set_epoch(e)`` then ``iter()`` yields
    epoch ``e``'s coreset batches as dicts; lazy (nothing is selected or loaded before the first batch).

    ``skip``: batches to skip at the start of each epoch (resuming mid-epoch).
    """

    def __init__(self, trainer: "AugmentedCoresetTrainer", skip: int = 0):
        self._trainer, self.skip = trainer, int(skip)
        self.epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self._trainer.steps_per_epoch()

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self._batches()

    def _batches(self) -> Iterator[dict[str, torch.Tensor]]:
        yield from itertools.islice(self._trainer.epoch_batches(self.epoch), self.skip, None)


class AugmentedCoresetTrainer(transformers.Trainer):
    """A ``transformers.Trainer`` that trains on ``coreset`` with the weighted loss (see the module docstring).

    Args:
        coreset: the :class:`coreaug.AugmentedCoreset` (its dataset replaces ``train_dataset``, which
            should be left out; its ``items`` read the rows, e.g. ``coreaug.DictItems("pixel_values", "label")``).
        input_key: the model's keyword for the inputs (default: the coreset's ``DictItems.input_key``,
            else ``"pixel_values"``).
        *args, **kwargs: those of ``transformers.Trainer`` (``model``, ``args``, ``eval_dataset``, …).

    The batch size is ``args.per_device_train_batch_size``; ``dataloader_num_workers`` and
    ``dataloader_pin_memory`` (on CUDA) are passed to :meth:`coreaug.AugmentedCoreset.loader`;
    ``dataloader_drop_last`` is not supported (every example of an epoch is trained on).

    Attributes:
        reselected_at: the epochs at which this process selected (restored selections are not listed).
    """

    #: compute_loss returns a per-batch mean: the Trainer divides it by the accumulation steps
    loss_is_scaled_for_ga = False

    def __init__(self, *args: Any, coreset: AugmentedCoreset, input_key: str | None = None, **kwargs: Any):
        if not isinstance(coreset, AugmentedCoreset):
            raise ConfigError(f"coreset must be a coreaug.AugmentedCoreset, got {type(coreset).__name__}")
        super().__init__(*args, **kwargs)
        if self.args.dataloader_drop_last:
            raise ConfigError("AugmentedCoresetTrainer trains on every example of an epoch: "
                              "set dataloader_drop_last=False")
        self.coreset = coreset
        read = getattr(coreset.weak_view, "read", None)
        self.input_key = input_key or (read.input_key if isinstance(read, DictItems) else "pixel_values")
        self.reselected_at: list[int] = []

    # -- the train dataloader ------------------------------------------------------------------
    def get_train_dataloader(self) -> CoresetTrainLoader:
        return CoresetTrainLoader(self)

    def get_resumed_dataloader(self, dataloader: Any, num_batches: int) -> CoresetTrainLoader:
        return CoresetTrainLoader(self, skip=num_batches)

    def steps_per_epoch(self) -> int:
        """Batches per epoch on this process (what ``len()`` of the train dataloader says)."""
        return self.coreset.steps_per_epoch(self._train_batch_size, world_size=max(1, self.args.world_size))

    def epoch_batches(self, epoch: int | None) -> Iterator[dict[str, torch.Tensor]]:
        """Epoch ``epoch``'s batches (default: the Trainer's current epoch), reselecting when due."""
        epoch = int(self.state.epoch or 0) if epoch is None else int(epoch)
        model = self.accelerator.unwrap_model(self.model)
        due = self.coreset.due(epoch)
        loader = self.coreset.loader(
            model, epoch, batch_size=self._train_batch_size, num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory and self.args.device.type == "cuda", device=self.args.device)
        if due:
            self.reselected_at.append(epoch)
        for x, y, w in loader:
            yield {self.input_key: x, "labels": y, WEIGHTS_KEY: w}

    # -- the loss ------------------------------------------------------------------------------
    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None):
        """``weighted_loss(model(**inputs), labels, weights)`` on coreset batches; the Trainer's loss otherwise."""
        if WEIGHTS_KEY not in inputs:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        inputs = dict(inputs)
        weights, labels = inputs.pop(WEIGHTS_KEY), inputs.pop("labels")
        outputs = model(**inputs)
        loss = weighted_loss(outputs, labels, weights)
        return (loss, outputs) if return_outputs else loss

    # -- checkpoints ---------------------------------------------------------------------------
    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            run_dir = self._get_output_dir(trial=trial)
            folder = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            torch.save(self.coreset.state_dict(), os.path.join(folder, CORESET_STATE))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = os.path.join(resume_from_checkpoint, CORESET_STATE)
        if os.path.isfile(path):
            self.coreset.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
