"""Training pipeline units: epoch composition per regime, weighted loss, config validation, presets."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from coreaug.data.base import ArrayDataset
from coreaug.errors import ConfigError
from coreaug.train import METHODS, PRESETS, EpochDataset, TrainConfig, plan_epoch, resolve_config, weighted_batch_loss
from coreaug.api.epoch import STRONG, WEAK, make_loader

N = 20
S = torch.tensor([2, 5, 11, 17])
GAMMA = torch.tensor([0.5, 2.0, 1.25, 0.25])  # mean 1
RANDOM_MAIN = torch.tensor([0, 3, 9, 19])


def _plan(method, **kw):
    return plan_epoch(method, N, subset=S, gamma=GAMMA, random_main=RANDOM_MAIN, **kw)


def test_full_and_full_aug_compositions():
    p = plan_epoch("full", N)
    assert len(p) == N and p.aug_indices.numel() == 0 and torch.equal(p.main_indices, torch.arange(N))
    assert torch.all(p.main_weights == 1)
    p = plan_epoch("full-aug", N)
    # every example once weak-augmented plus one appended strong copy: 2n
    assert len(p) == 2 * N
    assert torch.equal(p.main_indices, torch.arange(N)) and torch.equal(p.aug_indices, torch.arange(N))
    assert torch.all(p.main_weights == 1) and torch.all(p.aug_weights == 1)


def test_regime_a_full_plus_aug_subset():
    p = _plan("full+aug-subset")
    assert len(p) == N + len(S)  # appended, not replaced
    assert torch.equal(p.main_indices, torch.arange(N)) and torch.all(p.main_weights == 1)
    assert torch.equal(p.aug_indices, S) and torch.all(p.aug_weights == 1)


def test_regime_b_subset_only_weights():
    p = _plan("subset-only")
    assert len(p) == 2 * len(S)
    assert torch.equal(p.main_indices, S) and torch.equal(p.main_weights, GAMMA)  # γ on the originals
    assert torch.equal(p.aug_indices, S) and torch.all(p.aug_weights == 1)  # aug copies weight 1 by default
    p = _plan("subset-only", aug_weight="gamma")
    assert torch.equal(p.aug_weights, GAMMA)  # option: γ on the aug copies as well


def test_regime_c_random_plus_aug_subset():
    p = _plan("random+aug-subset")
    assert len(p) == len(RANDOM_MAIN) + len(S)
    assert torch.equal(p.main_indices, RANDOM_MAIN) and torch.all(p.main_weights == 1)
    assert torch.equal(p.aug_indices, S) and torch.all(p.aug_weights == 1)


def test_subset_baseline_without_augmentation():
    p = _plan("subset")
    assert torch.equal(p.main_indices, S) and torch.equal(p.main_weights, GAMMA) and p.aug_indices.numel() == 0


def test_plan_errors():
    with pytest.raises(ConfigError, match="needs a selected subset"):
        plan_epoch("subset-only", N)
    with pytest.raises(ConfigError, match="random main"):
        plan_epoch("random+aug-subset", N, subset=S)
    with pytest.raises(ConfigError, match="does not match"):
        plan_epoch("subset-only", N, subset=S, gamma=torch.ones(3))


def _marked_views():
    images = torch.arange(N, dtype=torch.uint8).view(N, 1, 1, 1).expand(N, 1, 2, 2).contiguous()
    base = ArrayDataset(images, torch.arange(N) % 3)
    weak = base.with_transform(lambda x: x.float())  # value i
    strong = base.with_transform(lambda x: -x.float() - 1)  # value -(i+1): marks a strong copy
    return weak, strong


@pytest.mark.parametrize("method", ["full", "full-aug", "full+aug-subset", "subset-only", "random+aug-subset"])
def test_epoch_dataset_places_views_and_weights(method):
    weak, strong = _marked_views()
    plan = _plan(method, aug_weight="gamma")
    ds = EpochDataset.from_plan(plan, weak, strong)
    assert len(ds) == len(plan)
    items = [ds[k] for k in range(len(ds))]
    n_main = plan.main_indices.numel()
    for k, (x, y, w, idx, view) in enumerate(items):
        if k < n_main:
            assert view == WEAK and float(x[0, 0, 0]) == idx and idx == int(plan.main_indices[k])
            assert float(w) == float(plan.main_weights[k])
        else:
            j = k - n_main
            assert view == STRONG and float(x[0, 0, 0]) == -(idx + 1) and idx == int(plan.aug_indices[j])
            assert float(w) == float(plan.aug_weights[j])
        assert y == idx % 3
    # the loader visits every epoch example exactly once, and is reproducible from its seed
    batches = list(make_loader(ds, batch_size=7, seed=3))
    again = list(make_loader(ds, batch_size=7, seed=3))
    seen = sorted((int(i), int(v)) for b in batches for i, v in zip(b[3], b[4]))
    assert seen == sorted((int(ds.indices[k]), int(ds.view_ids[k])) for k in range(len(ds)))
    assert all(torch.equal(a[3], b[3]) for a, b in zip(batches, again))


def test_weighted_loss_equals_manual_computation():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(9, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (9,), generator=g)
    w = torch.rand(9, generator=g, dtype=torch.float64) * 3
    manual = 0.0
    for i in range(9):
        p = torch.softmax(logits[i], 0)
        manual += float(w[i]) * -float(torch.log(p[y[i]]))
    manual /= 9  # mean over the batch of w_i * CE_i (docs/paper-notes.md §3.6), not divided by sum(w)
    got = weighted_batch_loss(logits, y, w)
    assert got.item() == pytest.approx(manual, rel=1e-6)
    assert weighted_batch_loss(logits, y, torch.ones(9)).item() == pytest.approx(F.cross_entropy(logits, y).item())


def test_reselection_schedule():
    from torch.utils.data import TensorDataset

    from coreaug.api import AugmentedCoreset

    data = TensorDataset(torch.randn(20, 3), torch.arange(20) % 2)
    for every, epochs, expect in ((3, 10, [0, 3, 6, 9]), (1, 4, [0, 1, 2, 3])):
        coreset = AugmentedCoreset(data, selector="random", fraction=0.5, reselect_every=every, regime="subset")
        assert [e for e in range(epochs) if coreset.update(None, e)] == expect


def test_resolve_config_precedence(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("preset: digits-quick\nepochs: 7\nlr: 0.2\nmilestones: [3, 5]\n")
    cfg = resolve_config(None, f, {"lr": 0.3, "epochs": None})
    assert cfg.model == PRESETS["digits-quick"]["model"]  # from the preset named in the file
    assert cfg.epochs == 7 and cfg.milestones == [3, 5]  # file over preset
    assert cfg.lr == 0.3  # flag over file; None flags are ignored
    j = tmp_path / "c.json"
    j.write_text(json.dumps({"method": "full-aug"}))
    assert resolve_config("digits-quick", j).method == "full-aug"


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"method": "coreset-magic"}, "unknown method"),
        ({"selector": "kmeans"}, "unknown selector"),
        ({"strong_aug": "mixup"}, "unknown strong augmentation"),
        ({"weak_aug": "blur"}, "unknown weak augmentation"),
        ({"fraction": 0.0}, r"fraction must be in \(0, 1\]"),
        ({"fraction": 1.5}, r"fraction must be in \(0, 1\]"),
        ({"fraction": float("nan")}, "finite"),
        ({"reselect_every": 0}, "R must be an integer >= 1"),
        ({"reselect_every": 1.5}, "must be an integer"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"lr": -1.0}, "learning rate"),
        ({"label_noise": 1.0}, "label-noise"),
        ({"milestones": [5, 2]}, "milestones"),
        ({"dataset": "mnist-xyz"}, "unknown dataset"),
        ({"model": "vgg"}, "unknown model"),
        ({"threads": 0}, "threads must be a positive integer"),
        ({"per_class": "fair"}, "unknown per-class budget"),
        ({"method": "subset-only", "strong_aug": "none"}, "appends strong-augmented copies"),
    ],
)
def test_config_validation_errors(overrides, match):
    with pytest.raises(ConfigError, match=match):
        resolve_config("digits-quick", None, overrides)


def test_unknown_preset_and_keys(tmp_path):
    with pytest.raises(ConfigError, match="unknown preset"):
        resolve_config("cifar11-resnet20")
    f = tmp_path / "bad.yaml"
    f.write_text("epochz: 3\n")
    with pytest.raises(ConfigError, match="unknown config key"):
        resolve_config(None, f)
    f.write_text("[1, 2\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        resolve_config(None, f)


def test_presets_are_valid_and_carry_paper_settings():
    for name in PRESETS:
        cfg = resolve_config(name)
        assert cfg.method in METHODS
    c10 = resolve_config("cifar10-resnet20")
    assert (c10.model, c10.lr, c10.momentum, c10.weight_decay, c10.epochs, c10.milestones, c10.batch_size) == (
        "resnet20", 0.1, 0.9, 1e-4, 200, [100, 150], 128)
    cal = resolve_config("caltech256-resnet18")
    assert (cal.lr, cal.batch_size, cal.epochs, cal.reselect_every, cal.fraction, cal.method) == (
        1e-3, 64, 40, 5, 0.3, "subset-only")
    inet = resolve_config("imagenet-resnet50")
    assert (inet.model, inet.epochs, inet.milestones, inet.reselect_every, inet.fraction, inet.method) == (
        "resnet50", 90, [30, 60], 15, 0.5, "random+aug-subset")
    assert "NOT FOUND" in c10.notes


def test_config_hash_ignores_device_but_not_hyperparameters():
    a, b = TrainConfig(), TrainConfig(device="cpu", num_workers=3)
    assert a.hash() == b.hash()
    assert a.hash() != TrainConfig(lr=0.2).hash()


def test_adamw_optimizer_trains_and_resumes_bit_for_bit(tmp_path):
    from coreaug.train import loop

    cfg = resolve_config("digits-quick", overrides={"model": "mlp", "epochs": 2, "fraction": 0.1, "device": "cpu",
                                                    "optimizer": "adamw", "lr": 1e-3, "diagnostics_every": 0,
                                                    "threads": 1, "strong_aug": "gaussian-noise"})
    loop.train(cfg, tmp_path / "a", quiet=True)
    loop.train(cfg, tmp_path / "b", quiet=True, stop_after_epoch=1)
    loop.train(cfg, tmp_path / "b", quiet=True, resume=True)
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert "exp_avg_sq" in next(iter(a["optimizer"]["state"].values()))  # AdamW's state, not SGD's momentum


@pytest.mark.parametrize("old, new, name", [("coreaug.train.epoch_data", "coreaug.api.epoch", "plan_epoch"),
                                            ("coreaug.train.distributed", "coreaug.distributed", "DistContext")])
def test_moved_modules_still_import_and_say_where_they_went(old, new, name):
    import importlib
    import sys

    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"moved to {new}"):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


@pytest.mark.parametrize("name, home", [("evaluate", "coreaug.train.trainer"), ("summarize", "coreaug.train.results"),
                                        ("weighted_batch_loss", "coreaug.train"),
                                        ("METRIC_FIELDS", "coreaug.train.observers")])
def test_names_that_left_the_loop_module_still_resolve_and_say_where_they_went(name, home):
    import importlib

    from coreaug.train import loop

    with pytest.warns(DeprecationWarning, match=f"moved to {home}"):
        value = getattr(loop, name)
    assert value is getattr(importlib.import_module(home), name)
    with pytest.raises(AttributeError):
        loop.no_such_name
