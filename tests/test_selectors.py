"""The selectors of issue 12 against textbook / brute-force references; registry; determinism; bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.optimize import nnls

from coreaug.errors import ConfigError, SelectionError
from coreaug.select import (
    REGISTRY, SELECTION_METHODS, ForgettingTracker, facility_location, facility_location_objective, get_selector, select,
)
from coreaug.select.craig_pb import craig_pb_subset, minibatches
from coreaug.select.forgetting import forgetting_scores, forgetting_subset
from coreaug.select.gradmatch import gradmatch_subset, nn_ridge, omp_nonneg
from coreaug.select.graph_cut import graph_cut_subset
from coreaug.select.herding import herding, herding_subset, running_mean_errors
from coreaug.select.kcenter import covering_radius, kcenter_greedy, kcenter_subset
from coreaug.select.registry import NEEDS, describe_selectors, needs_of
from coreaug.select.scores import el2n_scores, el2n_subset, grand_scores, grand_subset
from coreaug.select.uncertainty import uncertainty_scores, uncertainty_subset


def _data(n: int = 120, c: int = 3, d: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % c
    z = torch.randn(n, c, generator=g) * 2.0
    p = z.softmax(dim=1)
    h = torch.randn(n, d, generator=g)
    feats = p.clone()
    feats[torch.arange(n), y] -= 1.0
    losses = -p[torch.arange(n), y].log()
    tracker = ForgettingTracker(n)
    for _ in range(4):
        tracker.update(torch.arange(n), torch.rand(n, generator=g) > 0.4)
    return dict(labels=y, probs=p, embeddings=h, features=feats, losses=losses,
                grad_norms=grand_scores(p, y, h), history=tracker)


def _inputs(d):
    return {k: d[k] for k in ("features", "losses", "probs", "embeddings", "grad_norms", "history")}


# ------------------------------------------------------------------ registry and dispatch
def test_registry_names_needs_and_aliases():
    assert set(SELECTION_METHODS) == set(REGISTRY) and len(SELECTION_METHODS) == 14
    assert {s.name for s in REGISTRY.values() if s.weighted} == {"coreset", "gradmatch", "craig_pb"}
    for spec in REGISTRY.values():
        assert spec.needs <= set(NEEDS) and spec.description and "\n" not in spec.description
    assert get_selector("K-Center").name == "kcenter" and get_selector("craig").name == "coreset"
    assert get_selector("craig-pb").name == "craig_pb" and get_selector("graph-cut").name == "graph_cut"
    assert needs_of("entropy", "kcenter", "coreset") == {"probs", "embedding", "grad_proxy"}
    assert len(describe_selectors()) == len(REGISTRY)
    with pytest.raises(ConfigError, match="unknown selection method 'bogus'; choose one of: coreset"):
        select("bogus", labels=torch.zeros(3, dtype=torch.long), fraction=0.5)
    with pytest.raises(SelectionError, match="needs embeddings"):
        select("herding", labels=torch.zeros(3, dtype=torch.long), fraction=0.5, features=torch.randn(3, 2))
    with pytest.raises(ConfigError, match="does not take option"):
        select("entropy", labels=torch.zeros(3, dtype=torch.long), fraction=0.5, probs=torch.full((3, 2), 0.5),
               greedy="lazy")


@pytest.mark.parametrize("method", SELECTION_METHODS)
def test_every_selector_budgets_and_determinism(method):
    d = _data()
    a = select(method, labels=d["labels"], fraction=0.2, seed=3, **_inputs(d))
    b = select(method, labels=d["labels"], fraction=0.2, seed=3, **_inputs(d))
    assert a == b  # deterministic under a seed
    idx = a.indices
    assert idx.dtype == torch.long and torch.equal(idx, torch.unique(idx)) and int(idx.max()) < 120
    assert bool((a.weights >= 0).all()) and a.weights.dtype == torch.float32
    counts = torch.bincount(d["labels"][idx], minlength=3).tolist()
    if method == "craig_pb":
        assert all(abs(c - 8) <= 16 for c in counts)  # whole mini-batches of 32 around the budget 8
    else:
        assert counts == [8, 8, 8]
    if not get_selector(method).weighted:
        assert bool((a.weights == 1).all())


# ------------------------------------------------------------------ uncertainty, EL2N, GraNd
def _top_k_reference(scores, labels, budgets):
    out = []
    for c, k in enumerate(budgets):
        mem = [i for i in range(len(labels)) if labels[i] == c]
        out += sorted(mem, key=lambda i: (-scores[i], i))[:k]
    return sorted(out)


def test_uncertainty_scores_direct_formulas_and_top_k():
    d = _data(60, 4)
    p = d["probs"].double().tolist()
    lc = [1 - max(r) for r in p]
    ent = [-sum(q * math.log(q) for q in r if q > 0) for r in p]
    mar = [1 - (sorted(r)[-1] - sorted(r)[-2]) for r in p]
    for kind, ref in (("least_confidence", lc), ("entropy", ent), ("margin", mar)):
        s = uncertainty_scores(d["probs"], kind)
        assert torch.allclose(s, torch.tensor(ref, dtype=torch.float64), atol=1e-6)
        sel = uncertainty_subset(d["probs"], d["labels"], [3, 1, 2, 5], kind=kind)
        assert sel.indices.tolist() == _top_k_reference(s.tolist(), d["labels"].tolist(), [3, 1, 2, 5])
    # ties go to the lower position
    flat = torch.full((6, 2), 0.5)
    assert uncertainty_subset(flat, torch.zeros(6, dtype=torch.long), 2).indices.tolist() == [0, 1]


def test_el2n_and_grand_against_formula_and_autograd():
    d = _data(40, 5, 7)
    y, p, h = d["labels"], d["probs"], d["embeddings"]
    e = torch.nn.functional.one_hot(y, 5).double()
    assert torch.allclose(el2n_scores(p, y), (p.double() - e).norm(dim=1), atol=1e-9)
    # GraNd's closed form = ‖∇_(W,b) CE‖ of a final linear layer, by autograd, example by example
    torch.manual_seed(0)
    fc = torch.nn.Linear(7, 5).double()
    with torch.no_grad():
        probs = fc(h.double()).softmax(1)
    ref = []
    for i in range(40):
        fc.zero_grad()
        torch.nn.functional.cross_entropy(fc(h[i:i + 1].double()), y[i:i + 1]).backward()
        ref.append(math.sqrt(float(fc.weight.grad.pow(2).sum() + fc.bias.grad.pow(2).sum())))
    assert torch.allclose(grand_scores(probs, y, h), torch.tensor(ref, dtype=torch.float64), rtol=1e-9)
    s = el2n_scores(p, y)
    assert el2n_subset(p, y, [2, 2, 1, 3, 0]).indices.tolist() == _top_k_reference(s.tolist(), y.tolist(), [2, 2, 1, 3, 0])
    g = d["grad_norms"]
    assert grand_subset(g, y, [1, 2, 3, 1, 1]).indices.tolist() == _top_k_reference(g.tolist(), y.tolist(), [1, 2, 3, 1, 1])


# ------------------------------------------------------------------ forgetting
def test_forgetting_counts_match_hand_computed_history():
    t = ForgettingTracker(5)
    # presentations (example: outcomes in order)
    # 0: 1 0 1 0 -> 2 forgets; 1: 0 0 0 -> never learned; 2: 1 1 1 -> 0 (unforgettable)
    # 3: 0 1 0 -> 1 forget; 4: never presented
    t.update(torch.tensor([0, 1, 2, 3]), torch.tensor([1, 0, 1, 0]))
    t.update(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 0, 1, 1]))
    t.update(torch.tensor([3, 0, 2, 1]), torch.tensor([0, 1, 1, 0]))
    t.update(torch.tensor([0, 0]), torch.tensor([1, 0]))  # repeated index: applied in order (+1 forget)
    assert t.forgets.tolist() == [2, 0, 0, 1, 0]
    assert t.seen.tolist() == [5, 3, 3, 3, 0]
    assert forgetting_scores(t).tolist() == [2.0, math.inf, 0.0, 1.0, math.inf]
    labels = torch.zeros(5, dtype=torch.long)
    assert forgetting_subset(t, labels, 2).indices.tolist() == [1, 4]  # never learned / never presented first
    assert forgetting_subset(t, labels, 4).indices.tolist() == [0, 1, 3, 4]
    # checkpoint round trip
    t2 = ForgettingTracker(5)
    t2.load_state_dict(t.state_dict())
    assert forgetting_subset(t2, labels, 3, seed=1) == forgetting_subset(t, labels, 3, seed=1)
    with pytest.raises(Exception, match="covers 5 examples"):
        ForgettingTracker(6).load_state_dict(t.state_dict())


def test_forgetting_epoch0_is_seeded_random_per_class():
    y = torch.arange(100) % 4
    t = ForgettingTracker(100)
    a, b = forgetting_subset(t, y, 0.2, seed=5), forgetting_subset(t, y, 0.2, seed=6)
    assert a.info["empty_history"] and a == forgetting_subset(t, y, 0.2, seed=5) and a != b
    assert torch.bincount(y[a.indices]).tolist() == [5, 5, 5, 5]
    assert a.indices.tolist() != [i for i in range(100) if i % 4 == 0][:5]  # not the lowest indices


# ------------------------------------------------------------------ k-center
@pytest.mark.parametrize("seed", range(4))
def test_kcenter_within_two_of_brute_force_radius(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(11, 2, generator=g).double()
    for k in (2, 3, 4):
        order, radius = kcenter_greedy(x, k, first=seed % 11)
        assert radius == pytest.approx(covering_radius(x, torch.tensor(order)), rel=1e-9)
        opt = min(covering_radius(x, torch.tensor(c)) for c in itertools.combinations(range(11), k))
        assert opt <= radius <= 2 * opt + 1e-12
        # farthest-first: each pick is the point farthest from the earlier picks
        for t in range(1, k):
            dmin = torch.cdist(x, x[order[:t]]).min(dim=1).values
            assert order[t] == int(torch.argmax(dmin))


def test_kcenter_chunked_equals_unchunked_and_per_class():
    d = _data(90, 3, 5)
    a = kcenter_subset(d["embeddings"], d["labels"], 0.2, seed=2, chunk_rows=7)
    b = kcenter_subset(d["embeddings"], d["labels"], 0.2, seed=2)
    assert a == b and len(a.info["radius"]) == 3


# ------------------------------------------------------------------ herding
def test_herding_running_mean_error_and_greedy_choice():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 3, generator=g).double()
    order, errs = herding(x, 10)
    assert errs == pytest.approx(running_mean_errors(x, order), abs=1e-12)
    mu = x.mean(0)
    for t in range(10):  # each pick minimises the running-mean error among the unpicked points
        cand = [j for j in range(40) if j not in order[:t]]
        best = min(cand, key=lambda j: (float((mu - x[order[:t] + [j]].mean(0)).norm()), j))
        assert order[t] == best
    # and tracks the mean better than random subsets of the same size
    rand = [float((mu - x[torch.randperm(40, generator=g)[:10]].mean(0)).norm()) for _ in range(50)]
    assert errs[-1] < 0.5 * float(np.mean(rand))
    sel = herding_subset(x.float(), torch.zeros(40, dtype=torch.long), 10)
    assert sel.indices.tolist() == sorted(order)


# ------------------------------------------------------------------ graph cut
def _sim(x: torch.Tensor, similarity: str) -> torch.Tensor:
    x = x.double() - x.double().mean(0)
    d = (x[:, None, :] - x[None, :, :]).norm(dim=2)
    return torch.exp(-d / x.shape[1]) if similarity == "exp" else d.max() - d


@pytest.mark.parametrize("similarity,lam", [("exp", 0.5), ("exp", 1.0), ("maxdist", 0.5), ("maxdist", 0.25)])
def test_graph_cut_matches_naive_set_function_greedy(similarity, lam):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(25, 4, generator=g).double()
    S = _sim(x, similarity)

    def f(sub):
        return float(S[:, sub].sum() - lam * S[sub][:, sub].sum()) if sub else 0.0

    chosen: list[int] = []
    for _ in range(7):
        best = max((j for j in range(25) if j not in chosen), key=lambda j: (f(chosen + [j]), -j))
        chosen.append(best)
    sel = graph_cut_subset(x, torch.zeros(25, dtype=torch.long), 7, lam=lam, similarity=similarity,
                           dtype=torch.float64)
    assert sel.indices.tolist() == sorted(chosen)
    assert sel.info["objective"] == pytest.approx(f(chosen), rel=1e-9)


def test_graph_cut_chunked_kernel_equals_dense():
    d = _data(150, 3, 4)
    a = graph_cut_subset(d["features"], d["labels"], 0.2, memory_budget=0, chunk_bytes=512)
    b = graph_cut_subset(d["features"], d["labels"], 0.2)
    assert a == b


# ------------------------------------------------------------------ GradMatch
@pytest.mark.parametrize("lam", [0.0, 0.5, 3.0])
@pytest.mark.parametrize("shape", [(6, 4), (4, 9)])
def test_nn_ridge_equals_scipy_nnls(lam, shape):
    g = torch.Generator().manual_seed(int(lam * 10) + shape[1])
    a = torch.randn(*shape, generator=g).double()
    b = torch.randn(shape[0], generator=g).double()
    w, r = nn_ridge(a, b, lam)
    aug = np.vstack([a.numpy(), math.sqrt(lam) * np.eye(shape[1])])
    ref, _ = nnls(aug, np.concatenate([b.numpy(), np.zeros(shape[1])]))
    assert np.allclose(w.numpy(), ref, atol=1e-8)
    assert torch.allclose(r, b - a @ w, atol=1e-12)


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_gradmatch_omp_weights_are_nnls_on_the_support(lam):
    d = _data(80, 2, 5)
    feats = torch.randn(80, 5, generator=torch.Generator().manual_seed(0)) + d["features"][:, :1]
    y = d["labels"]
    sel = gradmatch_subset(feats, y, 0.1, lam=lam)
    for c in range(2):
        mem = (y == c).nonzero().flatten()
        gc = feats[mem].double()
        b = gc.sum(0)
        support = sel.info["support"][c]
        assert len(support) <= 4
        # first pick = largest correlation with the target (textbook OMP)
        assert support[0] == int(mem[torch.argmax(gc @ b)])
        A = feats[support].double().T.numpy()
        aug = np.vstack([A, math.sqrt(lam) * np.eye(len(support))])
        ref, _ = nnls(aug, np.concatenate([b.numpy(), np.zeros(len(support))]))
        resid = np.linalg.norm(A @ ref - b.numpy()) / np.linalg.norm(b.numpy())
        assert sel.info["relative_residual"][c] == pytest.approx(resid, rel=1e-6, abs=1e-9)
        # selected weights = the NNLS weights on the support (zero-weight atoms dropped, fill at 1)
        w_of = dict(zip(sel.indices.tolist(), sel.weights.tolist()))
        for j, wj in zip(support, ref):
            if wj > 1e-9:
                assert w_of[j] == pytest.approx(wj, rel=1e-5)
        assert int((y[sel.indices] == c).sum()) == 4


def test_omp_residual_decreases_and_exact_recovery():
    g = torch.Generator().manual_seed(2)
    atoms = torch.randn(30, 12, generator=g).double()
    b = 2.0 * atoms[3] + 0.5 * atoms[17]
    support, w, r = omp_nonneg(atoms, b, 5, 0.0)
    assert set(support[:2]) == {3, 17} and float(r.norm()) < 1e-8
    assert sorted(zip(support[:2], w[:2].tolist())) == [(3, pytest.approx(2.0)), (17, pytest.approx(0.5))]


# ------------------------------------------------------------------ CRAIG-PB
def test_craig_pb_weights_sum_to_class_size_and_whole_batches():
    d = _data(200, 2, 4)
    y = d["labels"]
    sel = craig_pb_subset(d["features"], y, 0.25, batch_size=10, seed=4)
    for c in range(2):
        in_c = y[sel.indices] == c
        assert float(sel.weights[in_c].sum()) == pytest.approx(100.0, rel=1e-5)
    # the picked points are whole mini-batches of the seeded partition
    gen = torch.Generator().manual_seed(4)
    picked = set(sel.indices.tolist())
    for c in range(2):
        mem = (y == c).nonzero().flatten()
        batches = [set(mem[b].tolist()) for b in minibatches(mem.numel(), 10, gen)]
        assert all(b <= picked or not (b & picked) for b in batches)
        assert sum(1 for b in batches if b <= picked) == 2  # round(25 / 10)


def test_craig_pb_small_budgets_are_not_rounded_up_to_a_whole_batch():
    # 10 classes of 60 points, 10% → k_c = 6 < B = 32: each class picks ≈ 6 points, not 32
    y = torch.arange(600) % 10
    x = torch.randn(600, 5, generator=torch.Generator().manual_seed(2))
    sel = craig_pb_subset(x, y, 0.1, batch_size=32, seed=0)
    per_class = torch.bincount(y[sel.indices], minlength=10)
    assert int(per_class.max()) <= 6 + 1 and int(per_class.min()) >= 6 - 3
    assert sel.info["class_batch_sizes"] == [3] * 10
    assert float(sel.weights.sum()) == pytest.approx(600.0, rel=1e-5)


def test_craig_pb_with_batch_size_one_is_facility_location():
    y = torch.arange(60) % 2
    x = torch.randn(60, 4, generator=torch.Generator().manual_seed(1))
    a = craig_pb_subset(x, y, 0.2, batch_size=1, greedy="naive")
    b = facility_location(x.double(), y, 0.2, greedy="naive")
    # same greedy objective (the point order differs, so exact ties may resolve differently)
    assert facility_location_objective(x.double(), a.indices, y) == pytest.approx(b.info["objective"], rel=1e-6)
    # weights = cluster sizes: class points whose most similar selected point it is (direct reference)
    for c in range(2):
        mem = (y == c).nonzero().flatten()
        S = _sim(x[mem], "exp")
        sel_pos = torch.searchsorted(mem, a.indices[y[a.indices] == c])
        sizes = torch.bincount(S[:, sel_pos].argmax(dim=1), minlength=sel_pos.numel()).float()
        assert torch.equal(a.weights[y[a.indices] == c], sizes)


# ------------------------------------------------------------------ bad input → one-line SelectionError
@pytest.mark.parametrize("method", SELECTION_METHODS)
def test_bad_input_is_one_line_selection_error(method):
    d = _data(30, 3, 4)
    spec = get_selector(method)
    inputs = _inputs(d)
    # budget larger than a class
    with pytest.raises(SelectionError) as e:
        select(method, labels=d["labels"], fraction=[11, 1, 1], **inputs)
    assert "\n" not in str(e.value)
    # empty class with num_classes
    with pytest.raises(SelectionError, match="no points"):
        select(method, labels=d["labels"], fraction=0.3, num_classes=4, **inputs)
    # fraction out of range
    with pytest.raises(SelectionError):
        select(method, labels=d["labels"], fraction=1.5, **inputs)
    # NaN in the input the selector needs
    for need in spec.inputs:
        if need == "history":
            continue
        bad = dict(inputs)
        key = {"grad_proxy": "features", "embedding": "embeddings", "grad_norm": "grad_norms"}.get(need, need)
        arr = bad[key].clone()
        arr.view(-1)[0] = float("nan")
        bad[key] = arr
        with pytest.raises(SelectionError, match="NaN") as e:
            select(method, labels=d["labels"], fraction=0.3, **bad)
        assert "\n" not in str(e.value)


def test_probs_that_are_logits_and_bad_history():
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(SelectionError, match="not logits"):
        select("entropy", labels=y, fraction=0.5, probs=torch.randn(4, 3))
    with pytest.raises(SelectionError, match="ForgettingTracker"):
        select("forgetting", labels=y, fraction=0.5, history=[1, 2])
    with pytest.raises(SelectionError, match="lengths must match"):
        select("forgetting", labels=y, fraction=0.5, history=ForgettingTracker(5))


# ------------------------------------------------------------------ CUDA (skipped without a GPU)
@pytest.mark.cuda
@pytest.mark.parametrize("method", ["kcenter", "herding", "graph_cut", "gradmatch", "craig_pb", "entropy", "grand"])
def test_cuda_inputs_give_the_cpu_selection(method):
    d = _data(300, 3, 8)
    moved = {k: (v.cuda().double() if isinstance(v, torch.Tensor) else v) for k, v in _inputs(d).items()}
    ref = {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in _inputs(d).items()}
    cpu = select(method, labels=d["labels"], fraction=0.1, seed=1, **ref)
    gpu = select(method, labels=d["labels"], fraction=0.1, seed=1, **moved)
    assert torch.equal(gpu.indices.cpu(), cpu.indices)
    assert torch.allclose(gpu.weights.cpu(), cpu.weights, rtol=1e-6)
