"""Selectors against references: brute force, naive greedy, brute-force cluster counts; errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from coreaug.errors import ConfigError, InputError, SelectionError
from coreaug.select import (
    Selection,
    class_budgets,
    facility_location,
    facility_location_objective,
    greedy_facility_location,
    max_loss_subset,
    random_subset,
    select,
)



def test_threads_setting_is_restored():
    torch.set_num_threads(2)
    facility_location(torch.randn(50, 3), torch.arange(50) % 2, 0.2, threads=1)
    assert torch.get_num_threads() == 2


# ------------------------------------------------------------------ float64 references
def sim_matrix(x: torch.Tensor, similarity: str = "exp") -> torch.Tensor:
    """Reference similarity, written directly from the definition in float64."""
    x = x.double()
    d = (x[:, None, :] - x[None, :, :]).norm(dim=2)
    if similarity == "exp":
        return torch.exp(-d / x.shape[1])
    return d.max() - d


def F(S: torch.Tensor, subset) -> float:
    subset = list(subset)
    return float(S[:, subset].max(dim=1).values.sum()) if subset else 0.0


def brute_force_opt(S: torch.Tensor, k: int) -> float:
    return max(F(S, c) for c in itertools.combinations(range(S.shape[0]), k))


def naive_greedy_reference(S: torch.Tensor, k: int) -> list[int]:
    chosen: list[int] = []
    for _ in range(k):
        best, arg = -1.0, -1
        for j in range(S.shape[0]):
            if j in chosen:
                continue
            v = F(S, chosen + [j])
            if v > best + 1e-12:
                best, arg = v, j
        chosen.append(arg)
    return chosen


# ------------------------------------------------------------------ (1) brute force optimum
@pytest.mark.parametrize("similarity", ["exp", "maxdist"])
@pytest.mark.parametrize("greedy", ["naive", "lazy"])
def test_greedy_within_1_minus_1_over_e_of_brute_force(similarity, greedy):
    gen = torch.Generator().manual_seed(1)
    exact_cases = 0
    for trial in range(8):
        n = int(torch.randint(6, 13, (1,), generator=gen))
        d = int(torch.randint(1, 4, (1,), generator=gen))
        x = torch.randn(n, d, generator=gen, dtype=torch.float64) * (1 + 3 * (trial % 3))
        S = sim_matrix(x, similarity)
        for k in (1, 2, 3):
            opt = brute_force_opt(S, k)
            res = greedy_facility_location(x, k, greedy=greedy, similarity=similarity)
            got = F(S, res["order"].tolist())
            assert got >= (1 - 1 / math.e) * opt - 1e-9  # Nemhauser et al. 1978
            assert abs(res["objective"] - got) <= 1e-9 * max(1.0, got)  # tracked value is the real F
            ref_order = naive_greedy_reference(S, k)
            if abs(F(S, ref_order) - opt) <= 1e-12 * opt:  # brute force shows greedy is exact here
                exact_cases += 1
                assert got == pytest.approx(opt, rel=1e-9)
    assert exact_cases > 6


def test_greedy_is_exact_for_k1_and_matches_reference_greedy_sequence():
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(11, 2, generator=gen, dtype=torch.float64)
    S = sim_matrix(x)
    assert F(S, greedy_facility_location(x, 1)["order"].tolist()) == pytest.approx(brute_force_opt(S, 1))
    ref = naive_greedy_reference(S, 6)
    for greedy in ("naive", "lazy"):
        order = greedy_facility_location(x, 6, greedy=greedy)["order"].tolist()
        # same objective after every step (the sequence itself may differ at exact ties)
        for t in range(1, 7):
            assert F(S, order[:t]) == pytest.approx(F(S, ref[:t]), rel=1e-12)


# ------------------------------------------------------------------ (2) lazy == naive, stochastic close
@pytest.mark.parametrize("similarity", ["exp", "maxdist"])
@pytest.mark.parametrize("dense", [True, False])
def test_lazy_matches_naive_objective(similarity, dense):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(250, 6, generator=gen, dtype=torch.float64)
    kw = dict(similarity=similarity, force_dense=dense, chunk_bytes=100_000)
    naive = greedy_facility_location(x, 25, greedy="naive", **kw)
    for batch in (1, 16):
        lazy = greedy_facility_location(x, 25, greedy="lazy", lazy_batch=batch, **kw)
        assert lazy["objective"] == pytest.approx(naive["objective"], rel=1e-9)
        # same objective after every step, i.e. the same greedy trajectory up to exact ties
        for t in (1, 2, 5, 10, 17, 24):
            a = facility_location_objective(x, lazy["order"][:t], similarity=similarity)
            b = facility_location_objective(x, naive["order"][:t], similarity=similarity)
            assert a == pytest.approx(b, rel=1e-9)
    sto = greedy_facility_location(x, 25, greedy="stochastic", epsilon=0.01, **kw)
    assert sto["objective"] >= 0.98 * naive["objective"]
    ref = facility_location_objective(x, naive["order"], similarity=similarity)
    assert naive["objective"] == pytest.approx(ref, rel=1e-5)


def test_dense_and_chunked_give_same_selection():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(300, 5, generator=gen)
    y = torch.randint(0, 3, (300,), generator=gen)
    a = facility_location(x, y, 0.2, greedy="lazy")
    b = facility_location(x, y, 0.2, greedy="lazy", memory_budget=0, chunk_bytes=10_000)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.weights, b.weights)
    # the default engine: dense batched vs streamed (float32 ties may differ; objective may not)
    c = facility_location(x, y, 0.2, memory_budget=0)
    assert facility_location_objective(x, c.indices, y) == pytest.approx(facility_location_objective(x, a.indices, y), rel=1e-6)


def test_per_class_selection_equals_selection_inside_each_class():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(200, 4, generator=gen)
    y = torch.randint(0, 4, (200,), generator=gen)
    sel = facility_location(x, y, 0.1, per_class="equal", greedy="naive")
    for c, k in zip(sel.info["classes"], sel.info["budgets"]):
        mem = (y == c).nonzero().flatten()
        res = greedy_facility_location(x[mem], k, greedy="naive")
        assert sorted(mem[res["order"]].tolist()) == [i for i in sel.indices.tolist() if int(y[i]) == c]
    assert sel.info["objective"] == pytest.approx(facility_location_objective(x, sel.indices, y), rel=1e-5)


# ------------------------------------------------------------------ (3) weights = cluster sizes
@pytest.mark.parametrize("similarity", ["exp", "maxdist"])
def test_weights_are_brute_force_cluster_sizes(similarity):
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(150, 3, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (150,), generator=gen)
    sel = facility_location(x, y, 0.15, similarity=similarity, dtype=torch.float64)
    chosen = sel.indices.tolist()
    expected = {j: 0 for j in chosen}
    for i in range(150):
        same = [j for j in chosen if int(y[j]) == int(y[i])]
        dists = [float((x[i] - x[j]).norm()) for j in same]
        expected[same[int(np.argmin(dists))]] += 1
    assert sel.weights.tolist() == [float(expected[j]) for j in chosen]
    assert float(sel.weights.sum()) == 150.0
    norm = facility_location(x, y, 0.15, similarity=similarity, dtype=torch.float64, normalize_weights=True)
    assert torch.equal(norm.indices, sel.indices)
    assert float(norm.weights.mean()) == pytest.approx(1.0)
    assert torch.allclose(norm.weights, sel.weights * len(chosen) / 150.0)


def test_duplicate_points_empty_cluster_gets_weight_one():
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0]])
    sel = facility_location(x, torch.zeros(3, dtype=torch.long), 3)
    assert sel.indices.tolist() == [0, 1, 2]
    assert sorted(sel.weights.tolist()) == [1.0, 1.0, 2.0]  # one duplicate has an empty cluster → 1


# ------------------------------------------------------------------ budgets
def test_proportional_budgets_hit_total_exactly_and_follow_largest_remainder():
    assert class_budgets([5, 3, 2], 5) == [3, 1, 1]  # quotas 2.5, 1.5, 1.0 → floors 2,1,1; rem → class 0
    assert class_budgets([90, 5, 5], 10) == [8, 1, 1]  # quotas 9, .5, .5 → [9,1,0] → min-1 rule
    assert class_budgets([90, 5, 5], 2) == [2, 0, 0]  # B < classes: no min-1 rule
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        sizes = torch.randint(1, 50, (int(torch.randint(1, 12, (1,), generator=gen)),), generator=gen).tolist()
        total = int(torch.randint(1, sum(sizes) + 1, (1,), generator=gen))
        for mode in ("proportional", "equal"):
            b = class_budgets(sizes, total, mode)
            assert sum(b) == total and all(0 <= bi <= s for bi, s in zip(b, sizes))
            if total >= len(sizes):
                assert min(b) >= 1
        b = class_budgets(sizes, total, "proportional")
        quotas = [total * s / sum(sizes) for s in sizes]
        assert all(bi <= math.ceil(q - 1e-9) or bi == 1 for bi, q in zip(b, quotas))
        if min(quotas) >= 1:  # no min-1 fix-up: plain largest remainder, within 1 of the quota
            assert all(abs(bi - q) < 1 for bi, q in zip(b, quotas))


def test_equal_budgets():
    assert class_budgets([10, 10, 10], 7, "equal") == [3, 2, 2]
    assert class_budgets([1, 10, 10], 9, "equal") == [1, 4, 4]  # small class's shortfall spread
    assert class_budgets([1, 10, 10], 10, "equal-ceil") == [1, 6, 5]  # ceil(10/3)=4 → total 12, capped
    assert class_budgets([10, 10, 10], 10, "equal-ceil") == [4, 4, 4]  # official: may exceed B


def test_fraction_rounding():
    y = torch.arange(100) % 2
    assert len(random_subset(y, 0.29)) == 29  # floor(0.29·100) despite 28.999… in floating point
    assert len(random_subset(y, 1.0)) == 100
    assert len(random_subset(y, 0.001)) == 1  # never 0
    assert len(random_subset(y, 7)) == 7


# ------------------------------------------------------------------ baselines & dispatch
def test_random_and_maxloss():
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (90,), generator=gen)
    losses = torch.rand(90, generator=gen)
    r = random_subset(y, 0.2, seed=1)
    assert r.indices.tolist() == sorted(set(r.indices.tolist())) and torch.all(r.weights == 1)
    counts = torch.bincount(y[r.indices], minlength=3).tolist()
    assert counts == class_budgets(torch.bincount(y).tolist(), 18)
    m = max_loss_subset(losses, y, 0.2)
    for c, k in zip(m.info["classes"], m.info["budgets"]):
        mem = (y == c).nonzero().flatten()
        top = mem[torch.argsort(losses[mem], descending=True)[:k]]
        assert sorted(top.tolist()) == [i for i in m.indices.tolist() if int(y[i]) == c]
    g = max_loss_subset(losses, y, 10, per_class="none")
    assert sorted(g.indices.tolist()) == sorted(torch.topk(losses, 10).indices.tolist())


def test_select_dispatch():
    gen = torch.Generator().manual_seed(0)
    x, y, losses = torch.randn(60, 3, generator=gen), torch.arange(60) % 3, torch.rand(60, generator=gen)
    a = select("coreset", features=x, labels=y, losses=losses, fraction=0.1, seed=0)
    b = facility_location(x, y, 0.1)
    assert isinstance(a, Selection) and a == b
    assert select("facility_location", features=x, labels=y, fraction=0.1) == b
    assert select("random", labels=y, fraction=0.1, seed=3) == random_subset(y, 0.1, seed=3)
    assert select("maxloss", labels=y, losses=losses, fraction=0.1) == max_loss_subset(losses, y, 0.1)
    with pytest.raises(ConfigError):
        select("kmeans", features=x, labels=y, fraction=0.1)
    with pytest.raises(ConfigError):
        select("random", labels=y, fraction=0.1, greedy="lazy")
    with pytest.raises(SelectionError):
        select("maxloss", labels=y, fraction=0.1)


# ------------------------------------------------------------------ (4) determinism
@pytest.mark.parametrize("greedy", ["lazy", "naive", "stochastic"])
def test_deterministic_under_seed(greedy):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(500, 5, generator=gen)
    y = torch.randint(0, 5, (500,), generator=gen)
    a = facility_location(x, y, 0.1, greedy=greedy, seed=11)
    b = facility_location(x.clone(), y.clone(), 0.1, greedy=greedy, seed=11)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.weights, b.weights)
    assert torch.equal(random_subset(y, 0.1, seed=5).indices, random_subset(y, 0.1, seed=5).indices)
    if greedy == "stochastic":
        c = facility_location(x, y, 0.1, greedy=greedy, seed=12)
        assert not torch.equal(a.indices, c.indices)
    assert not torch.equal(random_subset(y, 0.1, seed=5).indices, random_subset(y, 0.1, seed=6).indices)


# ------------------------------------------------------------------ (5) bad input
X = torch.randn(20, 3)
Y = torch.arange(20) % 4


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: facility_location(torch.where(torch.arange(60).view(20, 3) == 7, float("nan"), X), Y, 0.5), "NaN"),
        (lambda: facility_location(torch.where(torch.arange(60).view(20, 3) == 7, float("inf"), X), Y, 0.5), "Inf"),
        (lambda: facility_location(X, Y, 0.0), "fraction"),
        (lambda: facility_location(X, Y, 1.5), "fraction"),
        (lambda: facility_location(X, Y, -0.2), "fraction"),
        (lambda: facility_location(X, Y, float("nan")), "fraction"),
        (lambda: facility_location(X, Y, True), "budget"),
        (lambda: facility_location(X, Y, "0.1"), "budget"),
        (lambda: facility_location(X, Y, 21), "larger than the number of points"),
        (lambda: facility_location(X, Y, 0), "at least 1"),
        (lambda: facility_location(X, Y, [6, 1, 1, 1]), "larger than the class"),
        (lambda: facility_location(X, Y, [1, 1]), "per-class budgets"),
        (lambda: facility_location(X, Y, 0.5, num_classes=5), "no points"),
        (lambda: facility_location(X, Y, 0.5, num_classes=3), "out of range"),
        (lambda: facility_location(X, Y - 1, 0.5), "non-negative"),
        (lambda: facility_location(X, Y.float(), 0.5), "integer"),
        (lambda: facility_location(X, Y[:19], 0.5), "lengths must match"),
        (lambda: facility_location(X[0], Y, 0.5), "2-D"),
        (lambda: facility_location(X[:, :, None], Y, 0.5), "2-D"),
        (lambda: facility_location(X, Y, 0.5, per_class="bogus"), "per_class"),
        (lambda: facility_location(X, Y, 0.5, greedy="bogus"), "greedy"),
        (lambda: facility_location(X, Y, 0.5, similarity="cosine"), "similarity"),
        (lambda: random_subset(Y, 1.01), "fraction"),
        (lambda: max_loss_subset(torch.full((20,), float("nan")), Y, 0.5), "NaN"),
        (lambda: max_loss_subset(torch.rand(19), Y, 0.5), "lengths must match"),
    ],
)
def test_bad_input_raises_one_clear_error(call, match):
    with pytest.raises(SelectionError, match=match) as info:
        call()
    assert isinstance(info.value, InputError)
    assert "\n" not in str(info.value)


def test_per_class_none_and_equal_ceil_through_facility_location():
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(120, 4, generator=gen)
    y = torch.cat([torch.zeros(10, dtype=torch.long), torch.ones(50, dtype=torch.long), torch.full((60,), 2)])
    pooled = facility_location(x, y, 12, per_class="none")
    ref = greedy_facility_location(x, 12)
    assert pooled.indices.tolist() == sorted(ref["order"].tolist())
    assert float(pooled.weights.sum()) == 120.0
    ceil = facility_location(x, y, 10, per_class="equal-ceil")
    assert ceil.info["budgets"] == [4, 4, 4] and len(ceil) == 12  # official ceil(B/C): may exceed B
    explicit = facility_location(x, y, [1, 2, 3])
    assert torch.bincount(y[explicit.indices], minlength=3).tolist() == [1, 2, 3]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_all_finite_agrees_with_isfinite_without_a_full_size_mask(bad, dtype):
    from coreaug.select.base import all_finite

    x = torch.randn(50, 7).to(dtype)
    assert all_finite(x) and all_finite(torch.empty(0, 3, dtype=dtype))
    for pos in [(0, 0), (49, 6), (17, 3)]:
        y = x.clone()
        y[pos] = bad
        assert not all_finite(y) and not bool(torch.isfinite(y).all())
        with pytest.raises(SelectionError, match="NaN or Inf values in 1 row"):
            facility_location(y.float(), torch.zeros(50, dtype=torch.long), 5)
