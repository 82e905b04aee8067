"""Dynamic pruning (InfoBatch, UCB, ε-greedy) against its definitions, through the public API and
through ``coreaug train`` (resume bit-for-bit, bad settings one line, cost fields)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import coreaug
from coreaug.api.pruning import EpsilonGreedyPruning, InfoBatch, UCBPruning
from coreaug.errors import ConfigError

from test_api import _data, _flip, _model


def _scored(pruner, losses: torch.Tensor) -> None:
    for col in losses.T if losses.ndim == 2 else [losses]:
        pruner.record(torch.arange(pruner.n), col)


def test_infobatch_follows_its_definition():
    n, r = 20000, 0.3
    ib = InfoBatch(n, prune_ratio=r, delta=0.5, seed=1)
    keep, w = ib.main_set(0, 10)
    assert keep.numel() == n and torch.all(w == 1)  # no scores yet: everything
    loss = torch.rand(n, generator=torch.Generator().manual_seed(0))
    _scored(ib, loss)
    keep, w = ib.main_set(1, 10)
    low = loss < loss.mean()
    assert torch.all(torch.isin((~low).nonzero().flatten(), keep))  # above the mean: always kept
    dropped = low.sum() - low[keep].sum()
    expect, sd = r * low.sum().item(), math.sqrt(low.sum().item() * r * (1 - r))
    assert abs(dropped.item() - expect) < 4 * sd  # each low example dropped with probability r
    assert torch.allclose(w[low[keep]], torch.tensor(1 / (1 - r))) and torch.all(w[~low[keep]] == 1)
    assert torch.equal(ib.main_set(1, 10)[0], keep) and not torch.equal(ib.main_set(2, 10)[0], keep)  # seeded
    assert ib.main_set(5, 10)[0].numel() == n  # annealing: epochs >= ceil(δ·E) train on everything


def test_infobatch_rescaling_keeps_the_expected_loss():
    """E[Σ_kept w·ℓ] = Σ ℓ: the rescaled pruned sum is unbiased (InfoBatch's Eq. 3)."""
    n = 400
    ib = InfoBatch(n, prune_ratio=0.5, delta=1.0, seed=0)
    loss = torch.rand(n, generator=torch.Generator().manual_seed(3)) ** 2
    _scored(ib, loss)
    sums = [float((w * loss[k]).sum()) for k, w in (ib.main_set(e, 10**6) for e in range(1, 801))]
    assert np.mean(sums) == pytest.approx(float(loss.sum()), rel=0.01)


def test_ucb_scores_are_window_mean_plus_c_std_and_the_top_share_is_kept():
    n, window = 50, 4
    ucb = UCBPruning(n, keep=0.4, c=2.0, window=window, seed=0)
    hist = torch.rand(n, 7, generator=torch.Generator().manual_seed(1))
    hist[:5, :] = float("nan")  # never recorded below
    for t in range(7):
        ucb.record(torch.arange(5, n), hist[5:, t])
    ref = hist[:, -window:].numpy()
    expect = ref.mean(1) + 2.0 * ref.std(1, ddof=1)
    got = ucb.scores()
    assert torch.all(torch.isinf(got[:5]))  # unseen: kept first
    assert np.allclose(got[5:].numpy(), expect[5:], rtol=1e-5)
    keep, w = ucb.main_set(3, 10)
    top = np.argsort(-np.where(np.isnan(expect), np.inf, expect), kind="stable")[:20]
    assert keep.tolist() == sorted(top.tolist()) and torch.all(w == 1)


def test_epsilon_greedy_explores_a_share_of_the_kept_set():
    n = 100
    eg = EpsilonGreedyPruning(n, keep=0.5, epsilon=0.2, c=0.0, window=2, seed=4)
    loss = torch.arange(n, dtype=torch.float32)  # score = index: the greedy part is the highest indices
    _scored(eg, torch.stack([loss, loss], 1))
    keep, _ = eg.main_set(1, 10)
    assert keep.numel() == 50
    assert set(range(60, 100)) <= set(keep.tolist())  # 40 greedy picks
    assert len(set(keep.tolist()) - set(range(60, 100))) == 10  # 10 explored among the rest
    assert not torch.equal(keep, eg.main_set(2, 10)[0])


@pytest.mark.parametrize("regime", ["full", "full-aug", "full+aug-subset"])
def test_pruned_main_set_reaches_the_loader(regime):
    ds, model = _data(n=90), _model()
    cs = coreaug.AugmentedCoreset(ds, strong=_flip, selector="random", fraction=0.2, regime=regime, seed=2,
                                  pruning="infobatch", epochs=10, pruning_options={"prune_ratio": 0.5})
    for epoch in range(3):
        items = {}
        for x, y, w, idx, view in cs.loader(model, epoch, batch_size=16, with_index=True):
            items.update({(int(i), int(v)): float(g) for i, v, g in zip(idx, view, w)})
            pe = coreaug.api.loss.per_example_loss(model(x), y)
            cs.record(idx[view == 0], losses=pe.detach()[view == 0])
        main = {i: g for (i, v), g in items.items() if v == 0}
        plan = cs.plan(epoch)
        assert main == {int(i): pytest.approx(float(g)) for i, g in zip(plan.main_indices, plan.main_weights)}
        if epoch == 0:
            assert len(main) == 90  # no scores yet
        else:
            assert len(main) < 90 and 2.0 in {round(g, 6) for g in main.values()}  # pruned, kept low rescaled
        strong = {i for (i, v) in items if v == 1}
        if regime == "full-aug":
            assert strong == set(main)
        elif regime == "full+aug-subset":
            assert strong == set(cs.indices.tolist())


def test_pruning_settings_are_checked():
    ds = _data()
    with pytest.raises(ConfigError, match="regime full, full-aug, full\\+aug-subset, not 'subset-only'"):
        coreaug.AugmentedCoreset(ds, strong=_flip, regime="subset-only", pruning="ucb")
    with pytest.raises(ConfigError, match="pass epochs="):
        coreaug.AugmentedCoreset(ds, regime="full", pruning="infobatch")
    with pytest.raises(ConfigError, match=r"prune_ratio must lie in \[0, 1\)"):
        coreaug.AugmentedCoreset(ds, regime="full", pruning="infobatch", epochs=3, pruning_options={"prune_ratio": 1})
    with pytest.raises(ConfigError, match=r"delta .* must lie in \(0, 1\]"):
        InfoBatch(10, delta=0.0)


def _train_cfg(**kw):
    from coreaug.train import resolve_config

    base = {"model": "mlp", "epochs": 3, "device": "cpu", "threads": 1, "diagnostics_every": 0,
            "method": "full", "pruning": "infobatch", "prune_ratio": 0.5, "strong_aug": "gaussian-noise"}
    return resolve_config("digits-quick", overrides={**base, **kw})


@pytest.mark.parametrize("overrides", [{}, {"method": "full+aug-subset", "pruning": "ucb", "fraction": 0.1}])
def test_train_with_pruning_resumes_bit_for_bit_and_counts_its_cost(tmp_path, overrides):
    from coreaug.train import loop

    cfg = _train_cfg(**overrides)
    whole = loop.train(cfg, tmp_path / "whole", quiet=True)
    loop.train(cfg, tmp_path / "cut", quiet=True, stop_after_epoch=1)
    again = loop.train(cfg, tmp_path / "cut", quiet=True, resume=True)
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert whole["final_test_acc"] == again["final_test_acc"]
    rows = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    if cfg.pruning == "infobatch":
        assert rows[0]["epoch_examples"] == 1437 and rows[1]["epoch_examples"] < 1437  # pruned after epoch 0
    assert whole["forward_passes_train_total"] == whole["backward_passes_train_total"] == whole["examples_seen_total"]
    assert whole["forward_passes_proxy_total"] == (1437 * whole["n_selections"] if cfg.uses_subset else 0)
    assert whole["example_passes_total"] == 2 * whole["examples_seen_total"] + whole["forward_passes_proxy_total"]
    assert whole["peak_memory_mb"] > 0


@pytest.mark.parametrize("flag, value, words", [
    ("--prune-ratio", "1.0", "prune ratio must be in [0, 1)"),
    ("--prune-delta", "0", "prune delta"),
    ("--pruning", "magic", "unknown pruning 'magic'"),
])
def test_bad_pruning_flags_exit_2_with_one_line(tmp_path, capsys, flag, value, words):
    from coreaug.cli import main

    code = main(["train", "--preset", "digits-quick", "--method", "full", "--pruning", "infobatch", flag, value,
                 "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_selection_that_does_not_pay_is_flagged():
    from coreaug.train.config import TrainConfig
    from coreaug.train.cost import selection_verdict

    cfg = TrainConfig(method="subset-only", fraction=0.1)
    rows = [{"selection_time": 5.0, "epoch_examples": 200, "train_time": 1.0}]  # 5 ms / example
    v = selection_verdict(cfg, rows, n_train=1000)
    assert v["reference"] == "full-aug" and v["selection_saved_s"] == pytest.approx(1800 * 0.005)
    assert v["selection_pays"] is True
    rows[0]["selection_time"] = 10.0
    assert selection_verdict(cfg, rows, n_train=1000)["selection_pays"] is False
    assert selection_verdict(TrainConfig(method="full"), rows, 1000)["selection_pays"] is None


@pytest.mark.parametrize("kw, match", [({"c": -0.5}, r"c \(the weight of the loss spread"),
                                       ({"keep": 0.0}, r"keep .* must lie in \(0, 1\]"),
                                       ({"epsilon": 1.5}, r"epsilon must lie in \[0, 1\]")])
def test_the_api_and_the_config_check_pruning_settings_by_the_same_ranges(kw, match):
    from coreaug.api.pruning import PRUNING_RANGES, make_pruning
    from coreaug.train import resolve_config

    with pytest.raises(ConfigError, match=match):
        make_pruning("epsilon-greedy", 10, **kw)
    name, value = next(iter(kw.items()))
    assert value not in PRUNING_RANGES[name]
    with pytest.raises(ConfigError, match=f"prune {name}"):
        resolve_config(overrides={f"prune_{name}": value})
