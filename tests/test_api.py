"""The public API (coreaug.AugmentedCoreset, select_coreset, weighted_loss) against references:
hand-computed proxies and the registry's selector, the regimes' epoch composition, the global RNG
state before/after, a resumed schedule against an uninterrupted one, and every bad input."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

import coreaug
from coreaug.errors import ConfigError, CoreaugError, InputError, SelectionError
from coreaug.runtime import derive_seed
from coreaug.select import select


def _data(n=120, classes=3, dim=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, dim, generator=g) + 2.0 * F.one_hot(y, dim).float()
    return TensorDataset(x, y)


def _model(dim=6, classes=3, seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(dim, 16), nn.ReLU(), nn.Linear(16, classes))


def _flip(x):  # a deterministic "strong augmentation" of the same shape
    return -x


def _rng_states():
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


def _same_rng(a, b) -> bool:
    return torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_select_coreset_returns_dataset_indices_of_the_reference_selection():
    ds, model = _data(), _model()
    idx, w = coreaug.select_coreset(model, ds, selector="coreset", fraction=0.1, seed=5)
    x, y = ds.tensors
    with torch.no_grad():
        feats = torch.softmax(model(x), 1) - F.one_hot(y, 3).float()  # the bias proxy by hand
    ref = select("coreset", features=feats, labels=y, fraction=0.1, per_class="equal-ceil",
                 seed=derive_seed(5, 0, 1) % 2**31, normalize_weights=True)
    assert torch.equal(idx, ref.indices) and torch.allclose(w, ref.weights)
    assert w.mean().item() == pytest.approx(1.0, rel=1e-6)


def test_select_coreset_under_a_pool_maps_pool_positions_to_dataset_indices():
    ds, model = _data(n=300), _model()
    idx, w = coreaug.select_coreset(model, ds, fraction=0.1, proxy_pool=0.5, seed=1)
    y = ds.tensors[1]
    assert idx.numel() == 30 and torch.equal(idx, torch.unique(idx))
    assert torch.bincount(y[idx], minlength=3).tolist() == [10, 10, 10]  # budgets of the whole set
    # the same selection on a shuffled copy of the dataset names the same examples
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(0))
    shuffled = TensorDataset(ds.tensors[0][perm], y[perm])
    idx2, _ = coreaug.select_coreset(model, shuffled, fraction=0.1, seed=1, selector="maxloss")
    idx1, _ = coreaug.select_coreset(model, ds, fraction=0.1, seed=1, selector="maxloss")
    assert torch.equal(torch.sort(perm[idx2]).values, idx1)


@pytest.mark.parametrize("regime", list(coreaug.REGIMES))
def test_loader_yields_the_regime_epoch_with_its_weights(regime):
    ds, model = _data(), _model()
    cs = coreaug.AugmentedCoreset(ds, strong=_flip, selector="coreset", fraction=0.25, reselect_every=2,
                                  regime=regime, seed=3)
    loader = cs.loader(model, 0, batch_size=16, with_index=True)
    seen = Counter()
    steps = 0
    for x, y, w, index, view in loader:
        steps += 1
        x0 = ds.tensors[0][index]
        assert torch.equal(x, torch.where(view[:, None] == 1, -x0, x0))  # strong copies went through `strong`
        assert torch.equal(y, ds.tensors[1][index])
        seen.update((int(i), int(v), round(float(g), 5)) for i, v, g in zip(index, view, w))
    plan = cs.plan(0)
    expect = Counter((int(i), 0, round(float(g), 5)) for i, g in zip(plan.main_indices, plan.main_weights))
    expect.update((int(i), 1, round(float(g), 5)) for i, g in zip(plan.aug_indices, plan.aug_weights))
    assert seen == expect
    assert steps == len(loader) == cs.steps_per_epoch(16)
    assert sum(expect.values()) == cs.epoch_size()
    if cs.uses_subset:
        sub = {int(i): float(g) for i, g in zip(cs.indices, cs.weights)}
        if regime in ("subset-only", "subset"):
            assert {i: g for (i, v, g) in seen if v == 0} == pytest.approx(sub, rel=1e-5)
        assert all(g == 1.0 for (_, v, g) in seen if v == 1)  # appended copies weigh 1 (official)


def test_reselection_at_0_R_2R_and_seeded_streams():
    ds, model = _data(), _model()
    cs = coreaug.AugmentedCoreset(ds, strong=_flip, selector="random", fraction=0.2, reselect_every=2,
                                  regime="random+aug-subset", seed=7)
    picks = {}
    for epoch in range(5):
        list(cs.loader(model, epoch, batch_size=32))
        picks[epoch] = (cs.selection.epoch, cs.indices.clone(), cs.random_main.clone())
    assert [picks[e][0] for e in range(5)] == [0, 0, 2, 2, 4]
    assert not torch.equal(picks[0][1], picks[2][1]) and not torch.equal(picks[0][2], picks[2][2])
    twin = coreaug.AugmentedCoreset(ds, strong=_flip, selector="random", fraction=0.2, reselect_every=2,
                                    regime="random+aug-subset", seed=7)
    twin.select(model, 2)
    assert torch.equal(twin.indices, picks[2][1]) and torch.equal(twin.random_main, picks[2][2])


def test_the_api_never_touches_global_rng_state():
    ds, model = _data(), _model()
    before = _rng_states()
    coreaug.select_coreset(model, ds, fraction=0.2, proxy_pool=0.5, seed=2)
    cs = coreaug.AugmentedCoreset(ds, strong=_flip, selector="coreset", fraction=0.2, reselect_every=1,
                                  regime="random+aug-subset", proxy_pool=0.5, seed=2)
    for epoch in range(2):
        for x, y, w in cs.loader(model, epoch, batch_size=16):
            coreaug.weighted_loss(model(x), y, w)
    assert _same_rng(before, _rng_states())
    assert torch.utils.data.DataLoader.__module__ == "torch.utils.data.dataloader"  # nothing patched


def test_state_dict_resumes_the_same_batches():
    ds, model = _data(), _model()
    kw = dict(strong=_flip, selector="coreset", fraction=0.2, reselect_every=3, regime="subset-only", seed=4)
    a = coreaug.AugmentedCoreset(ds, **kw)
    for epoch in range(2):
        list(a.loader(model, epoch, batch_size=16))
    b = coreaug.AugmentedCoreset(ds, **kw)
    b.load_state_dict(a.state_dict())
    assert b.selection_time == a.selection_time > 0
    for epoch in (2, 3):  # epoch 3 reselects in both
        batches_a = [t[3] for t in a.loader(model, epoch, batch_size=16, with_index=True)]
        batches_b = [t[3] for t in b.loader(model, epoch, batch_size=16, with_index=True)]
        assert all(torch.equal(p, q) for p, q in zip(batches_a, batches_b)) and len(batches_a) == len(batches_b)
    assert b.selection.epoch == 3 and torch.equal(a.indices, b.indices)


def test_dict_items_and_forgetting_history():
    ds = _data()
    rows = [{"features": x, "label": int(y)} for x, y in zip(*ds.tensors)]
    cs = coreaug.AugmentedCoreset(rows, strong=_flip, items=coreaug.DictItems("features", "label"),
                                  selector="forgetting", fraction=0.2, reselect_every=1, seed=0)
    model = _model()
    for epoch in range(2):
        for x, y, w, index, view in cs.loader(model, epoch, batch_size=32, with_index=True):
            main = view == 0
            cs.record(index[main], (model(x).argmax(1) == y)[main])
    assert cs.history is not None and cs.indices.numel() == 24
    assert cs.state_dict()["history"] is not None  # the coreset made the tracker: it checkpoints it


def test_weighted_loss_is_mean_of_weighted_cross_entropy():
    logits, y, w = torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0]), torch.rand(5)
    ref = sum(w[i] * F.cross_entropy(logits[i:i + 1], y[i:i + 1]) for i in range(5)) / 5
    assert coreaug.weighted_loss(logits, y, w).item() == pytest.approx(ref.item(), rel=1e-6)

    class Out:  # a Hugging Face-style output
        def __init__(self, t):
            self.logits = t

    assert coreaug.weighted_loss(Out(logits), y, w).item() == pytest.approx(ref.item(), rel=1e-6)


class _NoLinear(nn.Module):
    def forward(self, x):
        return x[:, :3]


@pytest.mark.parametrize("make, error, words", [
    (lambda ds, m: coreaug.select_coreset(m, [(x, y, 0) for x, y in ds], fraction=0.1), InputError,
     "(x, y) pairs, got 3-tuples"),
    (lambda ds, m: coreaug.select_coreset(m, [{"a": x, "b": y} for x, y in ds]), InputError, "DictItems"),
    (lambda ds, m: coreaug.select_coreset(m, TensorDataset(ds.tensors[0], ds.tensors[1].float())), InputError,
     "integer class indices"),
    (lambda ds, m: coreaug.select_coreset(m, ds, num_classes=2), InputError, "lie in [0, 2)"),
    (lambda ds, m: coreaug.select_coreset(_model(classes=5), ds), InputError, "outputs 5 logits"),
    (lambda ds, m: coreaug.select_coreset(_NoLinear(), ds), ConfigError, "pass head="),
    (lambda ds, m: coreaug.select_coreset(m, ds, fraction=0.0), SelectionError, "(0, 1]"),
    (lambda ds, m: coreaug.AugmentedCoreset(ds, strong=_flip, fraction=1.5), SelectionError, "(0, 1]"),
    (lambda ds, m: coreaug.AugmentedCoreset(ds, strong=lambda x: x[:3]), InputError, "changes the input shape"),
    (lambda ds, m: coreaug.AugmentedCoreset(ds, regime="subset-only"), ConfigError, "pass strong="),
    (lambda ds, m: coreaug.AugmentedCoreset(ds, strong=_flip, regime="coreset-b"), ConfigError, "unknown regime"),
    (lambda ds, m: coreaug.AugmentedCoreset(ds, strong=_flip, selector="kmeans"), ConfigError, "kmeans"),
    (lambda ds, m: coreaug.AugmentedCoreset(ds, strong=_flip, reselect_every=0), ConfigError, "reselect_every"),
])
def test_bad_input_is_one_line(make, error, words):
    ds, model = _data(), _model()
    with pytest.raises(error) as info:
        make(ds, model)
    msg = str(info.value)
    assert words in msg and "\n" not in msg and isinstance(info.value, CoreaugError)


def test_loader_for_an_earlier_epoch_says_what_is_expected():
    ds, model = _data(), _model()
    cs = coreaug.AugmentedCoreset(ds, strong=_flip, fraction=0.2)
    list(cs.loader(model, 3, batch_size=16))
    list(cs.loader(model, 3, batch_size=16))  # the same epoch again is fine
    with pytest.raises(InputError, match=r"epoch 1 after epoch 3: epochs must not go back"):
        cs.loader(model, 1, batch_size=16)


def test_train_loop_selects_what_the_api_selects(tmp_path):
    """`coreaug train` runs on the API: its checkpointed selection is the API's selection of that epoch."""
    from coreaug.train import loop, resolve_config
    from coreaug.train.subsets import coreset_for

    cfg = resolve_config("digits-quick", overrides={"model": "mlp", "epochs": 1, "fraction": 0.1, "device": "cpu",
                                                    "diagnostics_every": 0, "threads": 1})
    loop.train(cfg, tmp_path / "r", quiet=True)
    ck = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)
    _, views = loop.prepare_data(cfg)
    torch.manual_seed(cfg.seed)
    from coreaug.models import build_model

    model = build_model("mlp", 10, in_channels=1, image_size=8)  # the loop's init: seeded with cfg.seed
    cs = coreset_for(cfg, views["weak"], views["strong"], views["eval_train"])
    sel = cs.select(model, 0)
    assert torch.equal(sel.indices, ck["subset"]["indices"]) and torch.equal(sel.weights, ck["subset"]["weights"])


def test_the_strong_transform_shape_check_draws_nothing_from_the_global_rng():
    ds = _data()
    before = _rng_states()
    coreaug.AugmentedCoreset(ds, strong=lambda x: x + torch.randn_like(x) + float(np.random.rand()) * 0)
    assert _same_rng(before, _rng_states())
