"""spectra.alignment: ξ against autograd gradients; linearised dynamics against closed forms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spectra import (
    JacobianOperator,
    SpectraError,
    alignment_error,
    alignment_errors,
    gram_eigh,
    jacobian,
    residual_dynamics,
    residuals,
)

F64 = torch.float64


def _setup(n: int = 20):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3)).double()
    x = torch.randn(n, 6, dtype=F64)
    y = torch.randint(0, 3, (n,))
    with torch.no_grad():
        r = residuals(model(x), y, kind="ce")
    return model, x, y, r


def _autograd_xi(model, x, y, idx, w) -> float:
    """||∇ Σ_i CE_i − ∇ Σ_{j∈S} γ_j CE_j|| straight from autograd (no Jacobian involved)."""
    params = list(model.parameters())
    full = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), params)
    sub = torch.autograd.grad((w * F.cross_entropy(model(x[idx]), y[idx], reduction="none")).sum(), params)
    return float(torch.cat([(a - b).reshape(-1) for a, b in zip(full, sub)]).norm())


def test_xi_zero_for_everything_with_unit_weights():
    model, x, y, r = _setup()
    J = jacobian(model, x)
    everything = torch.arange(x.shape[0])
    assert alignment_error(J, r, everything) == pytest.approx(0.0, abs=1e-12)
    assert alignment_error(JacobianOperator(model, x, chunk_size=7), r, everything, None) == pytest.approx(0.0, abs=1e-12)
    # a strict subset with unit weights is not zero
    assert alignment_error(J, r, everything[:5]) > 1e-3


def test_xi_matches_autograd_weighted_gradient():
    model, x, y, r = _setup()
    J = jacobian(model, x)
    idx = torch.tensor([1, 4, 7, 11, 15])
    w = torch.tensor([3.0, 5.0, 4.0, 2.0, 6.0], dtype=F64)
    ref = _autograd_xi(model, x, y, idx, w)
    assert alignment_error(J, r, idx, w) == pytest.approx(ref, rel=1e-9)
    op = JacobianOperator(model, x, chunk_size=6)
    assert alignment_error(op, r, idx, w) == pytest.approx(ref, rel=1e-9)


def test_one_output_per_example_and_mean_scale():
    model, x, y, r = _setup()
    n = x.shape[0]
    Jt = jacobian(model, x, targets=y)
    rt = r[torch.arange(n), y]
    idx, w = torch.tensor([0, 3, 9]), torch.tensor([2.0, 7.0, 11.0], dtype=F64)
    expected = float((Jt.T @ rt - Jt[idx].T @ (w * rt[idx])).norm())
    assert alignment_error(Jt, rt, idx, w) == pytest.approx(expected, rel=1e-10)
    # mean scale: invariant to multiplying γ by a constant, equals the mean-gradient difference
    expected_mean = float((Jt.T @ rt / n - Jt[idx].T @ (w * rt[idx]) / w.sum()).norm())
    assert alignment_error(Jt, rt, idx, w, scale="mean") == pytest.approx(expected_mean, rel=1e-10)
    assert alignment_error(Jt, rt, idx, 7 * w, scale="mean") == pytest.approx(expected_mean, rel=1e-10)


def test_alignment_errors_table():
    model, x, y, r = _setup()
    J = jacobian(model, x)
    subsets = {
        "all": (torch.arange(20), None),
        "sizes": [(torch.arange(s), torch.full((s,), 20.0 / s, dtype=F64)) for s in (2, 5, 10)],
    }
    rows = alignment_errors(J, r, subsets)
    assert [(row["name"], row["size"]) for row in rows] == [("all", 20), ("sizes", 2), ("sizes", 5), ("sizes", 10)]
    assert rows[0]["xi"] == pytest.approx(0.0, abs=1e-12)
    full = float((J.T @ r.reshape(-1)).norm())
    for row in rows[1:]:
        assert row["weight_sum"] == pytest.approx(20.0)
        assert row["xi_relative"] == pytest.approx(row["xi"] / full)


def test_full_dynamics_closed_form_projection():
    model, x, y, r = _setup(n=10)
    J = jacobian(model, x)
    G = J @ J.T
    lam = torch.linalg.eigvalsh(G).flip(0)
    eta = 1.0 / float(lam[0])
    dyn = residual_dynamics(G, r, eta, 15)
    assert dyn.residuals.shape == (16, 30)
    t = torch.arange(16, dtype=F64).unsqueeze(1)
    torch.testing.assert_close(dyn.projections, (1 - eta * lam.clamp_min(0)) ** t * dyn.projections[0], atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(dyn.sigma, lam.clamp_min(0).sqrt())
    assert bool((dyn.loss[1:] <= dyn.loss[:-1] + 1e-12).all())  # monotone for η σ_1² ≤ 1


def test_subset_dynamics_reference_loop():
    model, x, y, r = _setup(n=10)
    J = jacobian(model, x)
    G = J @ J.T
    eta = 0.5 / float(torch.linalg.eigvalsh(G)[-1])
    full = residual_dynamics(G, r, eta, 5)
    same = residual_dynamics(G, r, eta, 5, subset=(torch.arange(10), None))
    torch.testing.assert_close(same.residuals, full.residuals)
    # weighted subset: explicit linearised parameter updates θ ← θ − η J_Sᵀ diag(γ) r_S, r ← r + J Δθ
    idx, w = torch.tensor([2, 5]), torch.tensor([4.0, 6.0], dtype=F64)
    dyn = residual_dynamics(G, r, eta, 5, subset=(idx, w))
    rows = torch.cat([torch.arange(3 * i, 3 * i + 3) for i in idx.tolist()])
    wr = w.repeat_interleave(3)
    cur = r.reshape(-1).clone()
    for t in range(5):
        step = J[rows].T @ (wr * cur[rows])
        cur = cur - eta * (J @ step)
        torch.testing.assert_close(dyn.residuals[t + 1], cur)
    mean = residual_dynamics(G, r, eta, 2, subset=(idx, 3 * w), scale="mean")
    mean_ref = residual_dynamics(G, r, eta / float(w.sum() * 3) , 2, subset=(idx, 3 * w))
    torch.testing.assert_close(mean.residuals, mean_ref.residuals)


def test_bad_input_raises():
    model, x, y, r = _setup()
    J = jacobian(model, x)
    with pytest.raises(SpectraError):
        alignment_error(J, r[:5], torch.arange(3))  # r does not match J's rows
    with pytest.raises(SpectraError):
        alignment_error(J, r, torch.tensor([0, 25]))  # index out of range
    with pytest.raises(SpectraError):
        alignment_error(J, r, torch.tensor([0, 1]), torch.tensor([1.0]))
    with pytest.raises(SpectraError):
        alignment_error(J, r, torch.tensor([0, 1]), scale="max")
    with pytest.raises(SpectraError):
        alignment_errors(J, r, {})
    with pytest.raises(SpectraError):
        residual_dynamics(J @ J.T, r, -1.0, 3)
    with pytest.raises(SpectraError):
        residual_dynamics(J, r, 0.1, 3)  # not square
    with pytest.raises(SpectraError):
        residuals(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]))


def test_residual_dynamics_reuses_a_given_eigendecomposition():
    torch.manual_seed(0)
    J = torch.randn(12, 30, dtype=torch.float64)
    G, r0 = J @ J.T, torch.randn(12, dtype=torch.float64)
    eig = gram_eigh(G)
    assert bool((eig[0][:-1] >= eig[0][1:]).all())  # descending
    for subset in (None, (torch.tensor([1, 4, 7]), torch.tensor([2.0, 1.0, 3.0], dtype=torch.float64))):
        a = residual_dynamics(G, r0, 0.01, 20, subset=subset)
        b = residual_dynamics(G, r0, 0.01, 20, subset=subset, eig=eig)
        torch.testing.assert_close(a.projections, b.projections, rtol=0, atol=0)
        torch.testing.assert_close(a.sigma, b.sigma, rtol=0, atol=0)
