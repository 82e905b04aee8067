"""spectra.perturb: ε-balls, projection, PGD, augmentation deltas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spectra import (
    SpectraError,
    augmentation_deltas,
    gram_matrix,
    perturbation_norms,
    project,
    random_perturbation,
    worst_case_perturbation,
)


def test_random_l2_ball_and_sphere_and_seed():
    x = torch.zeros(200, 3, 4, 4)
    d = random_perturbation(x, 0.7, "l2", seed=0)
    norms = perturbation_norms(d)["l2"]
    assert d.shape == x.shape
    assert bool((norms <= 0.7 + 1e-6).all())
    # uniform in a 48-dim ball: radius ε·U^{1/48} concentrates near ε but is below it
    assert 0.6 < float(norms.mean()) < 0.7
    assert torch.equal(d, random_perturbation(x, 0.7, "l2", seed=0))
    assert not torch.equal(d, random_perturbation(x, 0.7, "l2", seed=1))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(random_perturbation(x, 0.7, generator=g1), random_perturbation(x, 0.7, generator=g2))
    s = random_perturbation(x, 0.7, "l2", on_boundary=True, seed=0)
    torch.testing.assert_close(perturbation_norms(s)["l2"], torch.full((200,), 0.7))


def test_random_linf_box_and_vertices():
    x = torch.randn(50, 10)
    d = random_perturbation(x, 0.2, "linf", seed=3)
    assert float(d.abs().max()) <= 0.2 + 1e-7
    assert float(d.abs().max()) > 0.15
    v = random_perturbation(x, 0.2, "linf", on_boundary=True, seed=3)
    torch.testing.assert_close(v.abs(), torch.full_like(v, 0.2))
    assert 0.3 < float((v > 0).float().mean()) < 0.7


def test_project_closed_forms():
    d = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    torch.testing.assert_close(project(d, 1.0, "l2"), torch.tensor([[0.6, 0.8], [0.3, 0.4]]))
    torch.testing.assert_close(project(d, 1.0, "linf"), torch.tensor([[1.0, 1.0], [0.3, 0.4]]))
    p = project(d, 1.0, "l2")
    torch.testing.assert_close(project(p, 1.0, "l2"), p)  # idempotent


def _net():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
    x = torch.randn(64, 8)
    y = torch.randint(0, 4, (64,))
    return m, x, y


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_pgd_loss_beats_random_and_stays_in_ball(norm):
    m, x, y = _net()
    eps = 0.3
    d = worst_case_perturbation(m, x, y, eps, norm, steps=10, seed=0)
    n = perturbation_norms(d)["l2" if norm == "l2" else "linf"]
    assert bool((n <= eps + 1e-5).all())
    with torch.no_grad():
        base = F.cross_entropy(m(x), y, reduction="none")
        adv = F.cross_entropy(m(x + d), y, reduction="none") - base
        rnd = F.cross_entropy(m(x + random_perturbation(x, eps, norm, on_boundary=True, seed=1)), y, reduction="none") - base
        # reference: one full step along the gradient direction (FGSM for L∞, normalised for L2)
        xr = x.clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(F.cross_entropy(m(xr), y, reduction="sum"), xr)
    step = g.sign() if norm == "linf" else g / g.norm(dim=1, keepdim=True)
    with torch.no_grad():
        one = F.cross_entropy(m(x + eps * step), y, reduction="none") - base
    assert float(adv.mean()) > 0
    assert float(adv.mean()) > 2 * float(rnd.abs().mean())
    assert float(adv.mean()) >= 0.98 * float(one.mean())


def test_pgd_jacobian_norm_objective_grows_gram_diagonal():
    m, x, y = _net()
    x, y = x[:16], y[:16]
    d = worst_case_perturbation(m, x, y, 0.5, "l2", objective="logit_grad_norm", steps=8, params="all", seed=0)
    G0 = gram_matrix(m, x, targets=y, dtype=torch.float64)
    G1 = gram_matrix(m, x + d, targets=y, dtype=torch.float64)
    assert float(G1.diagonal().sum()) > float(G0.diagonal().sum())


def test_augmentation_deltas_closed_form_flip():
    x = torch.arange(2 * 1 * 2 * 3, dtype=torch.float32).reshape(2, 1, 2, 3)
    res = augmentation_deltas(x, lambda t: t.flip(-1))
    expected = x.flip(-1) - x
    torch.testing.assert_close(res.delta, expected)
    torch.testing.assert_close(res.l2, expected.reshape(2, -1).norm(dim=1))
    torch.testing.assert_close(res.linf, torch.full((2,), 2.0))
    # uint8 input: delta computed in float, no wrap-around
    xu = torch.tensor([[[0, 255]]], dtype=torch.uint8)
    r = augmentation_deltas(xu, lambda t: t.flip(-1), per_example=False)
    torch.testing.assert_close(r.delta, torch.tensor([[[255.0, -255.0]]]))


def test_augmentation_seed_reproducible_and_rng_untouched():
    x = torch.zeros(4, 5)
    noise = lambda t: t + torch.randn_like(t)  # noqa: E731 — uses the global RNG
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = augmentation_deltas(x, noise, seed=7).delta
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, augmentation_deltas(x, noise, seed=7).delta)
    assert not torch.equal(a, augmentation_deltas(x, noise, seed=8).delta)


def test_bad_input_raises():
    x = torch.randn(3, 4)
    for eps in (0.0, -1.0, float("nan"), float("inf"), "a"):
        with pytest.raises(SpectraError):
            random_perturbation(x, eps)
    with pytest.raises(SpectraError):
        random_perturbation(x, 0.1, "l1")
    with pytest.raises(SpectraError):
        random_perturbation(x, 0.1, seed=1, generator=torch.Generator())
    with pytest.raises(SpectraError):
        project(torch.tensor([[float("nan")]]), 1.0)
    m, xx, y = _net()
    with pytest.raises(SpectraError):
        worst_case_perturbation(m, xx, y[:3], 0.1)
    with pytest.raises(SpectraError):
        worst_case_perturbation(m, xx, y, 0.1, objective="bogus")
    with pytest.raises(SpectraError):
        worst_case_perturbation(m, xx, y, 0.1, steps=0)
    with pytest.raises(SpectraError):
        augmentation_deltas(x, lambda t: t[:2])
    with pytest.raises(SpectraError):
        augmentation_deltas(x, "not callable")  # type: ignore[arg-type]
