"""The batched / streamed / kNN facility-location engines against the naive greedy, brute force
and brute-force cluster sizes; device placement; CUDA equals CPU (tests marked ``cuda``)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from coreaug.errors import SelectionError
from coreaug.select import facility_location, facility_location_objective, greedy_facility_location, select
from coreaug.select import compiled as compiled_kernels
from coreaug.select.engine import BLOCK, build_batch, counts_from_assign, greedy_batch, padded_size, plan_batches
from coreaug.select.locality import locality_order
from coreaug.select.streamed import knn_greedy, streamed_greedy


def sim_matrix(x: torch.Tensor, similarity: str = "exp") -> torch.Tensor:
    """Reference similarity from the definition, float64."""
    x = x.double()
    d = (x[:, None, :] - x[None, :, :]).norm(dim=2)
    return torch.exp(-d / x.shape[1]) if similarity == "exp" else d.max() - d


def F(S: torch.Tensor, subset) -> float:
    subset = list(subset)
    return float(S[:, subset].max(dim=1).values.sum()) if subset else 0.0


def naive_reference(S: torch.Tensor, k: int) -> list[int]:
    """Plain greedy from the definition (first index on ties)."""
    chosen: list[int] = []
    cur = torch.zeros(S.shape[0], dtype=S.dtype)
    for _ in range(k):
        gains = (S - cur[:, None]).clamp_min(0).sum(dim=0)
        gains[chosen] = -math.inf
        j = int(torch.argmax(gains))
        chosen.append(j)
        cur = torch.maximum(cur, S[:, j])
    return chosen


def assert_same_trajectory(S: torch.Tensor, order, ref, rel: float = 1e-9) -> None:
    """Same objective after every step: the same greedy sequence up to exact ties."""
    order, ref = list(order), list(ref)
    assert len(order) == len(ref) == len(set(order))
    for t in range(1, len(ref) + 1):
        assert F(S, order[:t]) == pytest.approx(F(S, ref[:t]), rel=rel), t


def cuda_test_data() -> tuple[torch.Tensor, torch.Tensor]:
    """3,000 float64 points in 10 classes: the CUDA selection test's data (and its CPU twin's)."""
    gen = torch.Generator().manual_seed(21)
    return torch.randn(3000, 10, generator=gen, dtype=torch.float64), torch.randint(0, 10, (3000,), generator=gen)


def assert_same_selection_up_to_ties(a, b, x: torch.Tensor, y: torch.Tensor, similarity: str) -> None:
    """Two exact greedy runs: the same objective after every pick in every class (gains equal to
    the last bits can be summed in another order and break the other way), and identical
    selections wherever the picks agree."""
    assert a.info["objective"] == pytest.approx(b.info["objective"], rel=1e-9)
    for c, (oa, ob) in enumerate(zip(a.info["greedy_order"], b.info["greedy_order"])):
        if oa == ob:
            continue
        mem = (y == a.info["classes"][c]).nonzero().flatten()
        pos = {g: i for i, g in enumerate(mem.tolist())}
        S = sim_matrix(x[mem], similarity)
        assert_same_trajectory(S, [pos[g] for g in oa], [pos[g] for g in ob])
    if a.info["greedy_order"] == b.info["greedy_order"]:
        assert a == b


# ------------------------------------------------------------------ one ground set
@pytest.mark.parametrize("similarity", ["exp", "maxdist"])
@pytest.mark.parametrize("greedy", ["incremental", "sweep"])
def test_engine_follows_the_naive_greedy(similarity, greedy):
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(180, 4, generator=gen, dtype=torch.float64)
    S = sim_matrix(x, similarity)
    res = greedy_facility_location(x, 30, greedy=greedy, similarity=similarity)
    assert_same_trajectory(S, res["order"].tolist(), naive_reference(S, 30))
    assert res["objective"] == pytest.approx(F(S, res["order"].tolist()), rel=1e-12)
    assert res["dense"] is True


@pytest.mark.parametrize("similarity", ["exp", "maxdist"])
def test_engine_reaches_1_minus_1_over_e_of_brute_force(similarity):
    gen = torch.Generator().manual_seed(12)
    for trial in range(6):
        n = int(torch.randint(6, 12, (1,), generator=gen))
        x = torch.randn(n, 2, generator=gen, dtype=torch.float64) * (1 + trial)
        S = sim_matrix(x, similarity)
        for k in (1, 2, 3):
            opt = max(F(S, c) for c in itertools.combinations(range(n), k))
            for greedy in ("incremental", "sweep"):
                got = F(S, greedy_facility_location(x, k, greedy=greedy, similarity=similarity)["order"].tolist())
                assert got >= (1 - 1 / math.e) * opt - 1e-9
                if k == 1:
                    assert got == pytest.approx(opt, rel=1e-12)  # greedy is exact for one pick


@pytest.mark.parametrize("similarity", ["exp", "maxdist"])
def test_streamed_follows_the_naive_greedy_across_many_tiles(similarity):
    gen = torch.Generator().manual_seed(13)
    x = torch.randn(150, 3, generator=gen, dtype=torch.float64)
    S = sim_matrix(x, similarity)
    order, assign, cur = streamed_greedy(x, 25, similarity, tile_bytes=8 * 40 * 8)  # 40-element tiles
    assert_same_trajectory(S, order.tolist(), naive_reference(S, 25))
    # assignment and coverage against the definition (ties → the earlier pick)
    sub = S[:, order]
    assert torch.allclose(cur, sub.max(dim=1).values, rtol=0, atol=1e-12)
    assert torch.equal(assign, sub.max(dim=1).indices)


def test_dense_engine_and_streamed_agree_through_facility_location():
    gen = torch.Generator().manual_seed(14)
    x = torch.randn(400, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (400,), generator=gen)
    a = facility_location(x, y, 0.1, dtype=torch.float64)
    b = facility_location(x, y, 0.1, dtype=torch.float64, memory_budget=0)  # every class streamed
    ref = facility_location(x, y, 0.1, dtype=torch.float64, greedy="naive")
    for sel in (a, b):
        assert sel.info["objective"] == pytest.approx(ref.info["objective"], rel=1e-9)
        assert sel.info["budgets"] == ref.info["budgets"]
        assert float(sel.weights.sum()) == 400.0


# ------------------------------------------------------------------ many classes in one batch
@pytest.mark.parametrize("greedy", ["incremental", "sweep"])
def test_batched_classes_of_different_sizes_equal_per_class_greedy(greedy):
    gen = torch.Generator().manual_seed(15)
    sizes = [70, 64, 57, 9, 1]  # padding to 70; a 1-point class; uneven budgets
    y = torch.cat([torch.full((s,), c) for c, s in enumerate(sizes)])[torch.randperm(sum(sizes), generator=gen)]
    x = torch.randn(sum(sizes), 3, generator=gen, dtype=torch.float64)
    sel = facility_location(x, y, 0.2, dtype=torch.float64, greedy=greedy, batch_bytes=1 << 30)
    assert sel.indices.device.type == "cpu" and sel.weights.device.type == "cpu"
    chosen = set(sel.indices.tolist())
    for c, k in zip(sel.info["classes"], sel.info["budgets"]):
        mem = (y == c).nonzero().flatten()
        S = sim_matrix(x[mem])
        mine = [i for i, j in enumerate(mem.tolist()) if j in chosen]
        assert F(S, mine) == pytest.approx(F(S, naive_reference(S, k)), rel=1e-9)
        # the info's greedy order is a trajectory of the greedy too
        pos = {j: i for i, j in enumerate(mem.tolist())}
        assert_same_trajectory(S, [pos[j] for j in sel.info["greedy_order"][c]], naive_reference(S, k))
    # weights: brute-force cluster sizes inside each class (ties → the earlier pick)
    w = dict(zip(sel.indices.tolist(), sel.weights.tolist()))
    expected = {j: 0 for j in chosen}
    for c in sel.info["classes"]:
        order = sel.info["greedy_order"][c]
        for i in (y == c).nonzero().flatten().tolist():
            d = [float((x[i] - x[j]).norm()) for j in order]
            expected[order[min(range(len(d)), key=lambda r: (d[r], r))]] += 1
    assert w == {j: float(max(1, v)) for j, v in expected.items()}


def test_one_batch_equals_one_class_at_a_time():
    gen = torch.Generator().manual_seed(16)
    x = torch.randn(300, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (300,), generator=gen)
    one = facility_location(x, y, 0.15, dtype=torch.float64, batch_bytes=1 << 30)
    each = facility_location(x, y, 0.15, dtype=torch.float64, batch_bytes=0)
    assert one.info["class_objectives"] == pytest.approx(each.info["class_objectives"], rel=1e-12)
    assert one == each


@pytest.mark.parametrize("similarity", ["exp", "maxdist"])
def test_compiled_and_tensor_incremental_rules_follow_the_naive_greedy(similarity):
    # classes over several column blocks, padded, with their own budgets; clustered data, ordered
    # by locality_order as the engine does, so that whole blocks are really skipped
    if not compiled_kernels.AVAILABLE:
        pytest.skip("numba is not installed")
    gen = torch.Generator().manual_seed(23)
    feats = []
    for n in (300, 250, 130):
        centres = 4.0 * torch.randn(6, 3, generator=gen, dtype=torch.float64)
        f = centres[torch.arange(n) % 6] + torch.randn(n, 3, generator=gen, dtype=torch.float64)
        feats.append(f[locality_order(f)])
    budgets = [30, 25, 13]
    batch = build_batch(feats, similarity)
    assert batch.S.shape[1] == padded_size(300) and padded_size(300) // BLOCK >= 5
    fast = greedy_batch(batch, budgets, compiled=True)
    tensor = greedy_batch(batch, budgets, compiled=False)
    sweep = greedy_batch(batch, budgets, rule="sweep")
    # the two incremental implementations: the same state after every step, so the same output
    assert torch.equal(fast[0], tensor[0]) and torch.equal(fast[1], tensor[1])
    assert torch.allclose(fast[2], tensor[2], rtol=0, atol=1e-12)
    for c, f in enumerate(feats):
        S = sim_matrix(f, similarity)
        k = budgets[c]
        ref = naive_reference(S, k)
        for out in (fast, sweep):  # sweep sums its gains in another order: equal up to ties
            assert_same_trajectory(S, out[0][c, :k].tolist(), ref)
        assert (fast[0][c, k:] == -1).all()
    # the block maxima did prune: by the last step most (changed row, block) pairs lie under cur
    n0 = feats[0].shape[0]
    skipped = batch.block_max[0, :n0] <= fast[2][0, :n0, None]
    assert skipped.float().mean() > 0.5


def test_cpu_default_runs_the_compiled_greedy_and_the_tensor_loop_is_its_fallback(monkeypatch):
    if not compiled_kernels.AVAILABLE:
        pytest.skip("numba is not installed")
    gen = torch.Generator().manual_seed(31)
    x = torch.randn(400, 5, generator=gen, dtype=torch.float64)
    y = torch.arange(400) % 3
    calls = []
    real = compiled_kernels.greedy_batch_compiled
    monkeypatch.setattr(compiled_kernels, "greedy_batch_compiled", lambda *a, **k: calls.append(1) or real(*a, **k))
    fast = facility_location(x, y, 0.1, dtype=torch.float64)
    assert len(calls) == 3  # one class per batch on the compiled path
    monkeypatch.setattr(compiled_kernels, "AVAILABLE", False)  # as without numba
    slow = facility_location(x, y, 0.1, dtype=torch.float64)
    assert len(calls) == 3
    assert torch.equal(fast.indices, slow.indices) and torch.equal(fast.weights, slow.weights)
    assert fast.info["objective"] == pytest.approx(slow.info["objective"], rel=1e-12)


@pytest.mark.parametrize("similarity", ["exp", "maxdist"])
def test_every_exact_engine_agrees_up_to_ties_on_the_cuda_test_data(similarity):
    # the CUDA test's data has gains equal to the last bits: the sweep, the streamed greedy and the
    # naive greedy may break them the other way than the compiled incremental default
    x, y = cuda_test_data()
    default = facility_location(x, y, 0.1, similarity=similarity, dtype=torch.float64)
    for kw in ({"greedy": "sweep"}, {"memory_budget": 0}, {"greedy": "naive"}):
        other = facility_location(x, y, 0.1, similarity=similarity, dtype=torch.float64, **kw)
        assert_same_selection_up_to_ties(other, default, x, y, similarity)


def test_exact_ties_go_to_the_first_original_index_despite_the_locality_order():
    # every point twice (copy at +200): each duplicate pair ties exactly at every step; the
    # engine reorders points internally but must still pick the first copy, like naive greedy
    gen = torch.Generator().manual_seed(37)
    base = torch.randn(200, 4, generator=gen, dtype=torch.float64)
    x = torch.cat([base, base])
    y = torch.cat([torch.arange(200) % 2, torch.arange(200) % 2])
    sels = {rule: facility_location(x, y, 0.1, greedy=rule, dtype=torch.float64) for rule in ("auto", "naive")}
    for rule, sel in sels.items():
        assert int(sel.indices.max()) < 200, rule
    assert_same_selection_up_to_ties(sels["auto"], sels["naive"], x, y, "exp")


@pytest.mark.parametrize("compiled", [True, False])
def test_tie_rank_decides_between_exactly_equal_gains(compiled):
    if compiled and not compiled_kernels.AVAILABLE:
        pytest.skip("numba is not installed")
    gen = torch.Generator().manual_seed(41)
    base = torch.randn(60, 3, generator=gen, dtype=torch.float64)
    batch = build_batch([torch.cat([base, base])], "exp")  # point i and i + 60 tie at every step
    m = batch.S.shape[1]
    first, _, _ = greedy_batch(batch, [12], compiled=compiled)
    assert int(first.max()) < 60  # default: the smallest position
    rank = torch.arange(m).roll(60)[None, :].clone()  # copies (60..119) rank before originals
    rank[0, 120:] = m
    second, _, _ = greedy_batch(batch, [12], compiled=compiled, tie_rank=rank)
    assert torch.equal(second, first + 60)


def test_locality_order_is_a_deterministic_permutation_that_sorts_a_line():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(500, 7, generator=gen)
    p = locality_order(x)
    assert torch.equal(torch.sort(p).values, torch.arange(500)) and torch.equal(p, locality_order(x))
    # points on a line, one grid cell each: the curve visits them in order (either direction)
    t = torch.randperm(60, generator=gen).double()
    line = t[:, None] * torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    s = t[locality_order(line)]
    assert torch.equal(s, torch.sort(t).values) or torch.equal(s, torch.sort(t, descending=True).values)
    assert locality_order(torch.zeros(0, 3)).numel() == 0 and locality_order(torch.ones(2, 3)).tolist() == [0, 1]


def test_plan_batches_groups_similar_sizes_within_the_byte_budget():
    sizes = [1300, 1280, 1290, 732, 1000, 5, 1250]
    batches = plan_batches(sizes, 4, batch_bytes=4 * 1300 * 1300 * 3)
    assert sorted(c for b in batches for c in b) == list(range(len(sizes)))
    for b in batches:
        m = max(sizes[c] for c in b)
        assert len(b) == 1 or (len(b) * m * m * 4 <= 4 * 1300 * 1300 * 3 and min(sizes[c] for c in b) >= 0.8 * m)
    assert plan_batches(sizes, 4, batch_bytes=0) == [[0], [2], [1], [6], [4], [3], [5]]


def test_counts_from_assign_ignore_padding():
    assign = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0]])
    valid = torch.tensor([[True, True, True, False], [True, True, False, False]])
    assert counts_from_assign(assign, valid, 2).tolist() == [[1, 2], [2, 0]]


@pytest.mark.parametrize("similarity", ["exp", "maxdist"])
@pytest.mark.parametrize("sizes", [(20, 13), (1100, 530)], ids=["one-block", "many-tiles"])
def test_build_batch_matches_the_definition(similarity, sizes):
    # small classes in one column block; classes of many row tiles and blocks, one padded past a block edge
    gen = torch.Generator().manual_seed(17)
    feats = [torch.randn(n, 3, generator=gen, dtype=torch.float64) for n in sizes]
    b = build_batch(feats, similarity)
    m = b.S.shape[1]
    assert m % BLOCK == 0 and m >= max(sizes)
    for c, f in enumerate(feats):
        n = f.shape[0]
        ref = sim_matrix(f, similarity)
        assert torch.allclose(b.S[c, :n, :n], ref, atol=1e-12)
        assert torch.all(b.S[c, n:] == 0) and torch.all(b.S[c, :, n:] == 0)
        assert torch.allclose(b.gains0[c, :n], ref.sum(dim=0), atol=1e-9)
    assert torch.equal(b.block_max, b.S.view(2, m, m // BLOCK, BLOCK).amax(dim=3))
    if sizes[0] < 64:
        order, _, _ = greedy_batch(b, [5, 13])
        assert order[1].tolist() != [-1] * 5 and order.shape == (2, 13) and (order[0, 5:] == -1).all()


@pytest.mark.parametrize("similarity", ["exp", "maxdist"])
def test_build_batch_into_a_dirty_workspace_equals_a_fresh_build(similarity):
    # a reused workspace still holds the previous batch: padding must be re-zeroed, tiles of padded
    # classes copied into rows of stride m, wide features (larger tiles) built the same way
    gen = torch.Generator().manual_seed(5)
    for dim in (3, 40):
        feats = [torch.randn(n, dim, generator=gen, dtype=torch.float64) for n in (31, 26, 9)]
        fresh = build_batch(feats, similarity)
        m = padded_size(31)
        ws = torch.full((3 * m * m + 7,), float("nan"), dtype=torch.float64)
        reused = build_batch(feats, similarity, workspace=ws)
        assert reused.S.data_ptr() == ws.data_ptr()
        assert torch.equal(reused.S, fresh.S) and torch.equal(reused.gains0, fresh.gains0)
        assert torch.equal(reused.block_max, fresh.block_max)
        for c, f in enumerate(feats):
            n = f.shape[0]
            assert torch.allclose(reused.S[c, :n, :n], sim_matrix(f, similarity), atol=1e-12)
    with pytest.raises(ValueError, match="workspace must hold"):
        build_batch(feats, similarity, workspace=torch.empty(10, dtype=torch.float64))


def test_several_batches_share_one_workspace_and_match_one_class_at_a_time():
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(300, 4, generator=gen, dtype=torch.float64)
    y = torch.arange(300) % 5
    y[:40] = 0  # unequal classes: padded batches
    tiny = facility_location(x, y, 0.1, dtype=torch.float64, batch_bytes=1)  # one class per batch
    one = facility_location(x, y, 0.1, dtype=torch.float64)
    assert tiny == one and tiny.info["greedy_order"] == one.info["greedy_order"]


# ------------------------------------------------------------------ kNN (approximate)
def test_knn_with_all_neighbours_is_the_exact_greedy():
    gen = torch.Generator().manual_seed(18)
    x = torch.randn(120, 3, generator=gen, dtype=torch.float64)
    S = sim_matrix(x)
    order, assign, best, sparse = knn_greedy(x, 15, 120, tile_bytes=8 * 50 * 8)
    assert_same_trajectory(S, order.tolist(), naive_reference(S, 15))
    assert sparse == pytest.approx(F(S, order.tolist()), rel=1e-12)
    assert torch.equal(assign, S[:, order].max(dim=1).indices)


@pytest.mark.parametrize("similarity", ["exp", "maxdist"])
def test_knn_objective_ratio_on_small_data(similarity):
    """Approximate by design: the ratio is what it is; it must stay high and be ≤ 1 + rounding."""
    gen = torch.Generator().manual_seed(19)
    y = torch.arange(2000) % 2
    x = torch.randn(2000, 10, generator=gen) + 2.0 * torch.nn.functional.one_hot(y, 10)
    exact = facility_location(x, y, 0.1, similarity=similarity)
    approx = facility_location(x, y, 0.1, similarity=similarity, knn=32)
    f_exact = facility_location_objective(x, exact.indices, y, similarity=similarity)
    f_knn = facility_location_objective(x, approx.indices, y, similarity=similarity)
    assert 0.995 <= f_knn / f_exact <= 1.001
    assert approx.info["objective"] == pytest.approx(f_knn, rel=1e-5)  # reported under the exact similarity
    assert float(approx.weights.sum()) == 2000.0


def test_knn_must_be_positive():
    with pytest.raises(SelectionError, match="knn"):
        facility_location(torch.randn(20, 2), torch.zeros(20, dtype=torch.long), 3, knn=0)


# ------------------------------------------------------------------ devices
def test_select_with_a_device_returns_cpu_tensors():
    gen = torch.Generator().manual_seed(20)
    x, y = torch.randn(200, 4, generator=gen), torch.arange(200) % 4
    sel = select("coreset", features=x, labels=y, fraction=0.1, device=torch.device("cpu"))
    assert sel.indices.device.type == "cpu" and sel.weights.device.type == "cpu"
    assert sel == facility_location(x, y, 0.1)


@pytest.mark.cuda
@pytest.mark.parametrize("similarity", ["exp", "maxdist"])
def test_cuda_selection_equals_cpu_selection(similarity):
    x, y = cuda_test_data()
    cpu = facility_location(x, y, 0.1, similarity=similarity, dtype=torch.float64)
    for kw in ({}, {"greedy": "incremental"}, {"memory_budget": 0}):
        gpu = facility_location(x.cuda(), y, 0.1, similarity=similarity, dtype=torch.float64, **kw)
        assert gpu.indices.device.type == "cpu" and gpu.weights.device.type == "cpu"
        assert_same_selection_up_to_ties(gpu, cpu, x, y, similarity)
    f32 = facility_location(x.float().cuda(), y, 0.1, similarity=similarity)
    assert f32.info["objective"] >= 0.999 * cpu.info["objective"]
    sel = select("coreset", features=x.float(), labels=y, fraction=0.1, device=torch.device("cuda"))
    assert sel.indices.device.type == "cpu"
