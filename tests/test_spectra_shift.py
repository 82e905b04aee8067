"""spectra.shift: closed forms on a linear model f(x) = W x and on 2×2 rotations; bounds hold."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from spectra import (
    SpectraError,
    davis_kahan_check,
    jacobian,
    principal_angles,
    relative_shift,
    shift_summary,
    sin_theta,
    singular_values,
    stacked_check,
    wedin_check,
    weyl_check,
)

F64 = torch.float64


def _linear_case(seed: int = 0, n: int = 6, d: int = 4, k: int = 3, scale: float = 0.05):
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(d, k, bias=False).double()
    X = torch.randn(n, d, generator=g, dtype=F64) * torch.logspace(0, -1.5, d, dtype=F64)
    Delta = scale * torch.randn(n, d, generator=g, dtype=F64)
    return lin, X, Delta, k


def test_linear_model_spectrum_and_relative_shift_closed_form():
    # J(X) for f(x) = W x is X ⊗ I_k up to a column permutation: σ(J) = σ(X), each k times
    lin, X, Delta, k = _linear_case()
    J, Jt = jacobian(lin, X), jacobian(lin, X + Delta)
    sX, sXt = singular_values(X), singular_values(X + Delta)
    torch.testing.assert_close(singular_values(J), sX.repeat_interleave(k))
    torch.testing.assert_close(singular_values(Jt), sXt.repeat_interleave(k))
    rel = relative_shift(singular_values(J), singular_values(Jt))
    torch.testing.assert_close(rel, ((sXt - sX) / sX).repeat_interleave(k))


def test_weyl_on_linear_model_matches_closed_form():
    lin, X, Delta, k = _linear_case(seed=1)
    chk = weyl_check(jacobian(lin, X), jacobian(lin, X + Delta))
    # E = Δ ⊗ I_k (permuted) so ||E||_2 = ||Δ||_2; measured = max_i |σ_i(X+Δ) − σ_i(X)|
    assert chk.bound == pytest.approx(float(torch.linalg.matrix_norm(Delta, ord=2)), rel=1e-10)
    expected = float((singular_values(X + Delta) - singular_values(X)).abs().max())
    assert chk.measured == pytest.approx(expected, rel=1e-8)
    assert chk.holds
    # tight case: A = diag(3, 1), E = 0.5·I shifts both σ by exactly ||E||
    A = torch.diag(torch.tensor([3.0, 1.0], dtype=F64))
    tight = weyl_check(A, A + 0.5 * torch.eye(2, dtype=F64))
    assert tight.measured == pytest.approx(0.5) and tight.bound == pytest.approx(0.5) and tight.holds


def test_stacked_on_linear_model_closed_form():
    lin, X, Delta, k = _linear_case(seed=2)
    chk = stacked_check(jacobian(lin, X), jacobian(lin, X + Delta))
    sB = singular_values(torch.cat([X, X + Delta])).repeat_interleave(k)
    torch.testing.assert_close(chk.details["sigma_stacked"][: sB.shape[0]], sB)
    assert chk.details["monotone"] and chk.holds
    E = float(torch.linalg.matrix_norm(Delta, ord=2))
    assert chk.bound == pytest.approx(2 * float(singular_values(X)[0]) * E + E**2, rel=1e-10)
    # appending an exact copy: σ([A; A]) = √2 σ(A), band measured = 0
    A = X
    same = stacked_check(A, A.clone())
    torch.testing.assert_close(same.details["sigma_stacked"][:4], math.sqrt(2) * singular_values(A))
    assert same.measured == pytest.approx(0.0, abs=1e-10)


def test_principal_angles_closed_form():
    theta = 0.3
    e1 = torch.tensor([[1.0], [0.0], [0.0]], dtype=F64)
    u = torch.tensor([[math.cos(theta)], [math.sin(theta)], [0.0]], dtype=F64)
    torch.testing.assert_close(principal_angles(e1, u), torch.tensor([theta], dtype=F64))
    P = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]], dtype=F64)
    Q = torch.tensor([[1.0, 0.0], [0.0, math.cos(0.5)], [0.0, math.sin(0.5)], [0.0, 0.0]], dtype=F64)
    torch.testing.assert_close(principal_angles(P, 3 * Q), torch.tensor([0.0, 0.5], dtype=F64), atol=1e-12, rtol=0)
    # tiny angles stay accurate (arccos of a cosine would give ~1e-8 noise here)
    tiny = 1e-9
    v = torch.tensor([[math.cos(tiny)], [math.sin(tiny)], [0.0]], dtype=F64)
    assert float(principal_angles(e1, v)[0]) == pytest.approx(tiny, rel=1e-6)
    assert sin_theta(e1, v) == pytest.approx(math.sin(tiny), rel=1e-6)
    # unequal dimensions: min(r1, r2) angles, symmetric in the arguments
    u4 = torch.cat([u, torch.zeros(1, 1, dtype=F64)])
    torch.testing.assert_close(principal_angles(P, u4), principal_angles(u4, P))
    torch.testing.assert_close(principal_angles(P, u4), torch.tensor([0.0], dtype=F64), atol=1e-12, rtol=0)


def test_wedin_and_davis_kahan_2x2_closed_forms():
    eps = 0.1
    phi = 0.5 * math.atan(2 * eps)  # rotation of the top eigenvector of [[2, ε], [ε, 1]] (and of [[1, ε], [ε, 0]])
    A = torch.diag(torch.tensor([2.0, 1.0], dtype=F64))
    E = eps * torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=F64)
    w = wedin_check(A, A + E, 1)
    assert w.measured == pytest.approx(math.sin(phi), rel=1e-8)
    assert w.details["gap"] == pytest.approx((3 + math.sqrt(1 + 4 * eps**2)) / 2 - 1.0, rel=1e-10)
    assert w.bound == pytest.approx(eps / w.details["gap"], rel=1e-8)  # ||E v|| = ε for every unit v
    assert w.holds
    G = torch.diag(torch.tensor([1.0, 0.0], dtype=F64))
    dk = davis_kahan_check(G, G + E, 1)
    assert dk.measured == pytest.approx(math.sin(phi), rel=1e-8)
    lam2 = (1 - math.sqrt(1 + 4 * eps**2)) / 2
    assert dk.bound == pytest.approx(eps / (1 - lam2), rel=1e-8)
    assert dk.holds


@pytest.mark.parametrize("seed", range(4))
def test_bounds_hold_on_random_and_network_jacobians(seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(12, 30, generator=g, dtype=F64) * torch.logspace(0, -2, 30, dtype=F64)
    E = 0.02 * torch.randn(12, 30, generator=g, dtype=F64)
    for r in (1, 3, 12):
        assert wedin_check(A, A + E, r).holds
        assert davis_kahan_check(A @ A.T, (A + E) @ (A + E).T, r).holds
    assert weyl_check(A, A + E).holds
    assert stacked_check(A, A + E).holds
    # a real network: Jacobians at x and at x + δ
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 2)).double()
    x = torch.randn(8, 5, generator=g, dtype=F64)
    J, Jt = jacobian(net, x), jacobian(net, x + 0.05 * torch.randn(8, 5, generator=g, dtype=F64))
    assert weyl_check(J, Jt).holds and stacked_check(J, Jt).holds and wedin_check(J, Jt, 2).holds


def test_shift_summary_closed_form():
    s = torch.tensor([4.0, 2.0, 1.0], dtype=F64)
    t = torch.tensor([4.4, 2.2, 2.0], dtype=F64)
    summ = shift_summary(s, t, frac=1 / 3)
    assert summ["top_rel_change"] == pytest.approx(0.1)
    assert summ["bottom_rel_change"] == pytest.approx(1.0)
    assert summ["ratio_bottom_over_top"] == pytest.approx(10.0)
    rel = relative_shift(torch.tensor([2.0, 0.0]), torch.tensor([3.0, 1.0]))
    assert rel[0] == pytest.approx(0.5) and math.isnan(float(rel[1]))


def test_bad_input_raises():
    A = torch.randn(4, 3, dtype=F64)
    with pytest.raises(SpectraError):
        weyl_check(A, torch.randn(3, 4, dtype=F64))
    with pytest.raises(SpectraError):
        wedin_check(A, A, 0)
    with pytest.raises(SpectraError):
        wedin_check(A, A, 4)
    with pytest.raises(SpectraError):
        davis_kahan_check(A @ A.T, torch.randn(4, 4, dtype=F64), 1)  # not symmetric
    with pytest.raises(SpectraError):
        principal_angles(torch.randn(4, 2), torch.randn(5, 2))
    bad = A.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(SpectraError):
        stacked_check(A, bad)
    with pytest.raises(SpectraError):
        shift_summary(torch.ones(3), torch.ones(3), frac=0.9)


def test_report_from_joint_gram_matches_matrix_checks():
    from spectra import shift_report_from_gram

    g = torch.Generator().manual_seed(7)
    A = torch.randn(8, 25, generator=g, dtype=F64) * torch.logspace(0, -1, 25, dtype=F64)
    At = A + 0.05 * torch.randn(8, 25, generator=g, dtype=F64)
    B = torch.cat([A, At])
    rep = shift_report_from_gram(B @ B.T, 3)
    w, st, dk = weyl_check(A, At), stacked_check(A, At), davis_kahan_check(A @ A.T, At @ At.T, 3)
    assert rep["checks"]["weyl"].bound == pytest.approx(w.bound, rel=1e-9)  # ||E||_2 from Gram blocks
    assert rep["checks"]["weyl"].measured == pytest.approx(w.measured, rel=1e-6)
    assert rep["checks"]["stacked"].bound == pytest.approx(st.bound, rel=1e-9)
    assert rep["checks"]["davis_kahan"].measured == pytest.approx(dk.measured, rel=1e-6)
    assert all(c.holds for c in rep["checks"].values())
    torch.testing.assert_close(rep["sigma_clean"], singular_values(A))
    torch.testing.assert_close(rep["sigma_stacked"][:8], singular_values(B)[:8])
    with pytest.raises(SpectraError):
        shift_report_from_gram(torch.eye(5, dtype=F64), 1)
