"""coreaug.integrations.hf with a real ``transformers.Trainer`` and a tiny ViT built from a config (no
download) on 8×8 digits-like dict rows, on CPU: reselection at 0, R, 2R, the loss is the weighted loss
with the coreset's weights, the run takes ``coreset.steps_per_epoch`` steps per epoch, and a checkpoint
resume restores the selection."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F

import coreaug
from coreaug.errors import CoreaugError

transformers = pytest.importorskip("transformers")

from coreaug.integrations.hf import CORESET_STATE, WEIGHTS_KEY, AugmentedCoresetTrainer  # noqa: E402

CLASSES, PER_CLASS, BATCH = 10, 8, 16


def rows() -> list[dict]:
    """8×8 one-channel 'digits': a class-specific bright pixel plus noise, as HF image rows."""
    g = torch.Generator().manual_seed(0)
    out = []
    for i in range(CLASSES * PER_CLASS):
        y = i % CLASSES
        x = 0.3 * torch.randn(1, 8, 8, generator=g)
        x[0, y // 4 * 2, (y % 4) * 2] += 3.0
        out.append({"pixel_values": x, "label": y})
    return out


def strong(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def vit():
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=32, num_labels=CLASSES)
    return transformers.ViTForImageClassification(cfg)


def make_coreset(model, **kw) -> coreaug.AugmentedCoreset:
    return coreaug.AugmentedCoreset(rows(), items=coreaug.DictItems("pixel_values", "label"), strong=strong,
                                    fraction=0.25, reselect_every=2, seed=1, head=model.classifier, **kw)


def args(tmp_path, epochs: int, **kw):
    base = dict(output_dir=str(tmp_path), num_train_epochs=epochs, per_device_train_batch_size=BATCH, report_to=[],
                use_cpu=True, save_strategy="no", logging_strategy="no", learning_rate=1e-2, seed=0)
    return transformers.TrainingArguments(**{**base, **kw})


class SpyTrainer(AugmentedCoresetTrainer):
    """Records each training batch's weights, labels, epoch, and the loss against independent recomputations."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.calls: list[dict] = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        with torch.no_grad():
            logits = model(pixel_values=inputs["pixel_values"]).logits
            ce = F.cross_entropy(logits, inputs["labels"], reduction="none")
        w = inputs[WEIGHTS_KEY]
        self.calls.append({"epoch": int(self.state.epoch), "w": w.clone(), "x": inputs["pixel_values"].clone(),
                           "loss": float(loss.detach()), "weighted": float((w * ce).mean()), "plain": float(ce.mean()),
                           "selection": self.coreset.indices.clone()})
        return loss


def test_trainer_reselects_uses_the_weights_and_counts_steps(tmp_path):
    model = vit()
    coreset = make_coreset(model)
    trainer = SpyTrainer(model=model, args=args(tmp_path, 3), coreset=coreset)
    assert trainer.input_key == "pixel_values"
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.train()

    steps = coreset.steps_per_epoch(BATCH)
    assert coreset.epoch_size() % BATCH != 0  # a partial last batch is a step too
    assert len(trainer.get_train_dataloader()) == steps
    assert trainer.state.global_step == 3 * steps == len(trainer.calls)
    assert trainer.reselected_at == [0, 2] and coreset.selection.epoch == 2
    by_epoch = {e: [c for c in trainer.calls if c["epoch"] == e] for e in range(3)}
    assert [len(by_epoch[e]) for e in range(3)] == [steps] * 3
    assert torch.equal(by_epoch[0][0]["selection"], by_epoch[1][0]["selection"])
    assert not torch.equal(by_epoch[1][0]["selection"], by_epoch[2][0]["selection"])
    for c in trainer.calls:
        assert c["loss"] == pytest.approx(c["weighted"], rel=1e-5, abs=1e-6)
    assert any(abs(c["weighted"] - c["plain"]) > 1e-4 for c in trainer.calls)  # the weights changed the loss
    # the epoch's weights are γ of S (weak copies) and 1 (strong copies)
    w = torch.cat([c["w"] for c in by_epoch[2]]).sort().values
    expected = torch.cat([coreset.weights, torch.ones(coreset.indices.numel())]).sort().values
    assert torch.allclose(w, expected)
    assert not torch.allclose(coreset.weights, torch.ones_like(coreset.weights))
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())  # it trained


def test_resume_from_checkpoint_restores_the_selection(tmp_path):
    model_a = vit()
    coreset_a = make_coreset(model_a)
    trainer_a = SpyTrainer(model=model_a, args=args(tmp_path / "a", 2, save_strategy="epoch"), coreset=coreset_a)
    trainer_a.train()
    steps = coreset_a.steps_per_epoch(BATCH)
    ckpt = tmp_path / "a" / f"checkpoint-{steps}"
    assert (ckpt / CORESET_STATE).is_file()
    assert trainer_a.reselected_at == [0]

    model_b = vit()
    coreset_b = make_coreset(model_b)
    assert coreset_b.due(1)  # fresh: without the checkpoint it would select at epoch 1
    trainer_b = SpyTrainer(model=model_b, args=args(tmp_path / "b", 2), coreset=coreset_b)
    trainer_b.train(resume_from_checkpoint=str(ckpt))
    assert trainer_b.reselected_at == [] and coreset_b.selection.epoch == 0
    assert torch.equal(coreset_b.indices, coreset_a.indices) and torch.equal(coreset_b.weights, coreset_a.weights)
    a1 = [c for c in trainer_a.calls if c["epoch"] == 1]
    assert len(trainer_b.calls) == len(a1) == steps
    for a, b in zip(a1, trainer_b.calls):
        assert torch.equal(a["x"], b["x"]) and torch.equal(a["w"], b["w"])


def test_evaluation_batches_use_the_models_own_loss(tmp_path):
    model = vit()
    trainer = AugmentedCoresetTrainer(model=model, args=args(tmp_path, 1), coreset=make_coreset(model))
    batch = {"pixel_values": torch.randn(4, 1, 8, 8), "labels": torch.tensor([0, 1, 2, 3])}
    with torch.no_grad():
        loss = trainer.compute_loss(model, batch)
        expected = F.cross_entropy(model(pixel_values=batch["pixel_values"]).logits, batch["labels"])
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_bad_arguments_are_one_line_errors(tmp_path):
    model = vit()
    with pytest.raises(CoreaugError, match="AugmentedCoreset"):
        AugmentedCoresetTrainer(model=model, args=args(tmp_path, 1), coreset=object())
    with pytest.raises(CoreaugError, match="dataloader_drop_last"):
        AugmentedCoresetTrainer(model=model, args=args(tmp_path, 1, dataloader_drop_last=True),
                                coreset=make_coreset(model))
