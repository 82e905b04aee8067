"""Proxy pools (``--proxy-pool F``), the selection-time share, and the new execution defaults."""

from __future__ import annotations

import json

import pytest
import torch

from coreaug.data.base import TensorDataset
from coreaug.device import available_cpus, default_threads, resolve_eval_batch_size, resolve_num_workers
from coreaug.errors import ConfigError
from coreaug.models import build_model
from coreaug.proxies import compute_proxies
from coreaug.select import select
from coreaug.select.budgets import class_budgets
from coreaug.train.config import TrainConfig, resolve_config
from coreaug.runtime import derive_seed
from coreaug.api.selection import class_budget_plan, split_classes, stratified_pool
from coreaug.train.subsets import select_subset

CPU = torch.device("cpu")


def _setup(n=400, classes=4, seed=0):
    """A tiny in-memory eval view (imbalanced classes) and an MLP."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.full((k,), c) for c, k in enumerate([160, 120, 80, 40][:classes])])[:n]
    x = torch.randn(y.numel(), 1, 8, 8, generator=gen) + y[:, None, None, None].float() * 0.3
    torch.manual_seed(seed)
    model = build_model("mlp", classes, in_channels=1, image_size=8)
    return TensorDataset(x, y), model


def _cfg(**kw):
    return TrainConfig(**{"model": "mlp", "device": "cpu", "fraction": 0.1, **kw})


def test_stratified_pool_sizes_seeding_and_full_pool():
    y = torch.cat([torch.full((k,), c) for c, k in enumerate([100, 37, 3, 60])])
    y = y[torch.randperm(y.numel(), generator=torch.Generator().manual_seed(1))]
    budgets = [10, 10, 10, 10]  # class 2 has only 3 points: its whole class is the pool
    pool = stratified_pool(y, 0.25, budgets, seed=5)
    assert torch.equal(pool, torch.sort(pool).values) and pool.unique().numel() == pool.numel()
    counts = torch.bincount(y[pool], minlength=4).tolist()
    assert counts == [25, 10, 3, 15]  # min(n_c, max(budget_c, round(F·n_c)))
    assert torch.equal(pool, stratified_pool(y, 0.25, budgets, seed=5))
    assert not torch.equal(pool, stratified_pool(y, 0.25, budgets, seed=6))
    assert torch.equal(stratified_pool(y, 1.0, budgets, seed=5), torch.arange(y.numel()))


def test_full_pool_equals_the_direct_selection_exactly():
    ds, model = _setup()
    for per_class in ("equal-ceil", "proportional", "none"):
        cfg = _cfg(per_class=per_class)
        st = select_subset(cfg, model, ds, epoch=3, device=CPU)
        p = compute_proxies(model, ds, batch_size=512)
        ref = select("coreset", features=p.features, labels=p.labels, fraction=0.1, per_class=per_class,
                     seed=derive_seed(cfg.seed, 3, 1) % 2**31, normalize_weights=True)
        assert torch.equal(st.indices, ref.indices) and torch.equal(st.weights, ref.weights)


@pytest.mark.parametrize("per_class", ["equal-ceil", "proportional"])
def test_pool_selection_budgets_and_weights_rescaled_to_class_sizes(per_class):
    ds, model = _setup()
    y = ds.targets
    cfg = _cfg(per_class=per_class, proxy_pool=0.5)
    classes, sizes, budgets = class_budget_plan(y, 0.1, per_class)
    assert budgets == class_budgets(sizes, 40, per_class)  # budgets of the whole set, B = 0.1·n
    a = select_subset(cfg, model, ds, epoch=0, device=CPU)
    b = select_subset(cfg, model, ds, epoch=1, device=CPU)
    assert not torch.equal(a.indices, b.indices)  # a fresh pool per reselection
    assert torch.equal(a.indices, select_subset(cfg, model, ds, epoch=0, device=CPU).indices)  # seeded
    assert torch.bincount(y[a.indices], minlength=4).tolist() == budgets
    # reference: facility location on the pool's proxies, cluster sizes × n_c / m_c, mean 1
    pool = stratified_pool(y, 0.5, budgets, seed=derive_seed(cfg.seed, 0, 4))
    p = compute_proxies(model, ds, indices=pool)
    ref = select("coreset", features=p.features, labels=p.labels, fraction=budgets, per_class=per_class,
                 seed=derive_seed(cfg.seed, 0, 1) % 2**31)
    assert torch.equal(a.indices, pool[ref.indices])
    m_c = torch.bincount(y[pool], minlength=4).double()
    n_c = torch.tensor(sizes, dtype=torch.float64)
    g = ref.weights.double() * (n_c / m_c)[y[a.indices]]
    assert torch.allclose(a.weights.double(), g * g.numel() / g.sum(), rtol=1e-6)
    # without empty clusters, each class's weights sum to its share of the class sizes
    per_class_sum = torch.zeros(4, dtype=torch.float64).index_add_(0, y[a.indices], a.weights.double())
    assert torch.allclose(per_class_sum / per_class_sum.sum(), n_c / n_c.sum(), atol=1e-5)


def test_maxloss_on_a_pool_picks_the_pool_maxima():
    ds, model = _setup()
    cfg = _cfg(selector="maxloss", per_class="proportional", proxy_pool=0.25)
    st = select_subset(cfg, model, ds, epoch=2, device=CPU)
    _, _, budgets = class_budget_plan(ds.targets, 0.1, "proportional")
    pool = stratified_pool(ds.targets, 0.25, budgets, seed=derive_seed(cfg.seed, 2, 4))
    p = compute_proxies(model, ds, indices=pool)
    for c, k in enumerate(budgets):
        in_c = p.labels == c
        top = p.indices[in_c][torch.sort(p.losses[in_c], descending=True, stable=True).indices[:k]]
        assert torch.equal(torch.sort(top).values, st.indices[ds.targets[st.indices] == c])
    assert torch.equal(st.weights, torch.ones(st.indices.numel()))


def test_split_classes_balances_quadratic_cost():
    assert split_classes([10, 10, 10, 10], 2) == [0, 1, 0, 1]
    assert split_classes([100, 10, 10, 10], 2) == [0, 1, 1, 1]
    assert split_classes([5], 3) == [0]


def test_config_flags_defaults_and_hash():
    cfg = TrainConfig()
    assert cfg.proxy_pool == 1.0 and cfg.eval_batch_size == "auto" and cfg.num_workers == "auto"
    # a default proxy pool does not enter the hash (runs written before the field existed resume)
    assert TrainConfig(proxy_pool=1.0).hash() == cfg.hash() != TrainConfig(proxy_pool=0.5).hash()
    for bad in (0.0, 1.5, "half"):
        with pytest.raises(ConfigError, match="proxy"):
            resolve_config(overrides={"proxy_pool": bad})
    with pytest.raises(ConfigError, match="eval batch"):
        resolve_config(overrides={"eval_batch_size": 0})
    with pytest.raises(ConfigError, match="num_workers"):
        resolve_config(overrides={"num_workers": "many"})
    assert resolve_config(overrides={"eval_batch_size": 64.0}).eval_batch_size == 64
    assert resolve_eval_batch_size("auto", CPU) == 64 and resolve_eval_batch_size(7, CPU) == 7
    assert resolve_num_workers("auto", CPU) == 0 and resolve_num_workers(3, CPU) == 3
    assert resolve_num_workers("auto", torch.device("cuda")) == min(8, available_cpus())
    assert 1 <= default_threads(1) <= available_cpus() and default_threads(10**6) == 1


def test_cli_parses_the_new_flags():
    import argparse

    from coreaug.commands.train import add_arguments

    ap = argparse.ArgumentParser()
    add_arguments(ap)
    a = ap.parse_args(["--proxy-pool", "0.25", "--eval-batch-size", "auto", "--num-workers", "2"])
    assert a.proxy_pool == 0.25 and a.eval_batch_size == "auto" and a.num_workers == 2
    with pytest.raises(SystemExit):
        ap.parse_args(["--num-workers", "lots"])


def test_run_records_selection_share_per_epoch_and_in_total(tmp_path, capsys):
    from coreaug.cli import main

    out = tmp_path / "r"
    rc = main(["train", "--preset", "digits-quick", "--model", "mlp", "--epochs", "2", "--fraction", "0.1",
               "--proxy-pool", "0.5", "--reselect-every", "1", "--strong-aug", "gaussian-noise", "--device", "cpu", "--threads", "1",
               "--quiet", "--out", str(out)])
    assert rc == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    res = json.loads((out / "results.json").read_text())
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert res["proxy_pool"] == 0.5 and res["n_selections"] == 2
    for r in rows:
        assert r["selection_share"] == pytest.approx(r["selection_time"] / (r["selection_time"] + r["train_time"]))
        assert r["subset_weight_max"] >= 1.0  # γ has mean 1 over the coreset
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert rows[-1]["subset_weight_max"] == pytest.approx(float(ckpt["subset"]["weights"].max()))
    total = res["selection_time_total"] / (res["selection_time_total"] + res["train_time_total"])
    assert 0 < res["selection_share"] == pytest.approx(total)
    assert f"(selection {100 * res['selection_share']:.1f}%)" in line
    assert "selection_share" in (out / "metrics.csv").read_text().splitlines()[0]


class _RandomView(torch.utils.data.Dataset):
    """A view whose items depend on the global torch RNG (like a random augmentation)."""

    def __init__(self, n, offset):
        self.n, self.offset = n, offset

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.rand(3) + self.offset, i % 3, i


def test_persistent_loader_matches_the_plan_and_is_deterministic_for_any_worker_count():
    from coreaug.api.epoch import PersistentEpochLoader, plan_epoch

    n = 40
    weak, strong = _RandomView(n, 0.0), _RandomView(n, 10.0)
    plans = [plan_epoch("subset-only", n, subset=torch.tensor([1, 5, 7, 30]), gamma=torch.tensor([2., 1., .5, 3.])),
             plan_epoch("full+aug-subset", n, subset=torch.tensor([0, 39]))]

    def run(workers):
        loader = PersistentEpochLoader(weak, strong, n, batch_size=8, num_workers=workers)
        out = []
        for e, plan in enumerate(plans):
            batches = list(loader.epoch(plan, seed=derive_seed(0, e, 3), epoch=e))
            out.append([torch.cat([b[k] if b[k].ndim > 1 else b[k][:, None].float() for k in range(5)], 1)
                        for b in batches])
        return [torch.cat(b) for b in out]

    a, b = run(0), run(2)
    for ep, plan in zip(a, plans):
        x, w, idx, view = ep[:, :3], ep[:, 4], ep[:, 5].long(), ep[:, 6].long()
        assert torch.equal(torch.sort(idx[view == 0]).values, torch.sort(plan.main_indices).values)
        assert torch.equal(torch.sort(idx[view == 1]).values, torch.sort(plan.aug_indices).values)
        assert bool(((x >= 10) == (view[:, None] == 1)).all())  # the strong view served the appended copies
        expected = {(0, int(i)): float(v) for i, v in zip(plan.main_indices, plan.main_weights)}
        expected.update({(1, int(i)): float(v) for i, v in zip(plan.aug_indices, plan.aug_weights)})
        assert [float(v) for v in w] == [expected[(int(v), int(i))] for v, i in zip(view, idx)]
    assert all(torch.equal(p, q) for p, q in zip(a, b))  # same batches and "augmentations" with 0 or 2 workers
    assert not torch.equal(a[0][:4, :3], a[1][:4, :3])
