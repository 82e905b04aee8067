"""spectra.spectrum: Gram/SVD/top-k agree with each other and with closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from spectra import (
    JacobianOperator,
    SpectraError,
    condition_number,
    effective_rank,
    exact_svd,
    gram_matrix,
    jacobian,
    numerical_rank,
    singular_values,
    singular_values_from_gram,
    stable_rank,
    svd_from_gram,
    top_k_svd,
)

F64 = torch.float64


def _matrix_with_spectrum(N: int, p: int, s: torch.Tensor, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    U = torch.linalg.qr(torch.randn(N, len(s), generator=g, dtype=F64)).Q
    V = torch.linalg.qr(torch.randn(p, len(s), generator=g, dtype=F64)).Q
    return U @ torch.diag(s) @ V.T


@pytest.mark.parametrize("method", ["svd", "gram", "auto"])
def test_exact_svd_recovers_known_spectrum(method):
    s = torch.logspace(1, -2, 6, dtype=F64)
    J = _matrix_with_spectrum(6, 50, s)
    res = exact_svd(J, method=method)
    torch.testing.assert_close(res.S, s, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(res.U @ torch.diag(res.S) @ res.V.T, J, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(res.V.T @ res.V, torch.eye(6, dtype=F64), rtol=1e-6, atol=1e-6)


def test_gram_route_equals_svd_on_network_jacobian():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    x = torch.randn(12, 5, dtype=F64)
    J = jacobian(model, x)
    G = gram_matrix(model, x, block_size=5)
    torch.testing.assert_close(singular_values_from_gram(G), singular_values(J), rtol=1e-7, atol=1e-9)
    op = JacobianOperator(model, x)
    res = svd_from_gram(G, op)  # right vectors through Jᵀ u products, J never formed
    keep = res.S > 1e-6 * res.S[0]
    torch.testing.assert_close(J @ res.V[:, keep], res.U[:, keep] * res.S[keep], rtol=1e-6, atol=1e-8)


def test_top_k_matches_exact_dense_and_implicit():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 10), nn.Tanh(), nn.Linear(10, 3)).double()
    x = torch.randn(20, 4, dtype=F64)
    J = jacobian(model, x)
    exact = singular_values(J)
    dense = top_k_svd(J, 5, return_vectors=True)
    torch.testing.assert_close(dense.S, exact[:5], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(J @ dense.V, dense.U * dense.S, rtol=1e-7, atol=1e-9)
    implicit = top_k_svd(JacobianOperator(model, x, chunk_size=7), 5)
    torch.testing.assert_close(implicit.S, exact[:5], rtol=1e-8, atol=1e-10)


def test_condition_and_ranks_closed_forms():
    s = torch.tensor([4.0, 2.0, 1.0, 0.0], dtype=F64)
    assert condition_number(s) == math.inf
    assert condition_number(s, rank=3) == pytest.approx(4.0)
    assert numerical_rank(s) == 3
    # equal singular values: effective rank = count, stable rank = count
    flat = torch.full((5,), 3.0, dtype=F64)
    assert effective_rank(flat) == pytest.approx(5.0)
    assert stable_rank(flat) == pytest.approx(5.0)
    assert condition_number(flat) == pytest.approx(1.0)
    # entropy effective rank of (1, 1, 2)/4: exp(-Σ q log q)
    q = torch.tensor([0.25, 0.25, 0.5], dtype=F64)
    assert effective_rank(torch.tensor([1.0, 1.0, 2.0])) == pytest.approx(float(torch.exp(-(q * q.log()).sum())))
    assert stable_rank(s) == pytest.approx((16 + 4 + 1) / 16)


def test_bad_input_raises():
    J = torch.randn(4, 6, dtype=F64)
    with pytest.raises(SpectraError):
        top_k_svd(J, 4)  # k must be < min(N, p)
    with pytest.raises(SpectraError):
        top_k_svd(J, 0)
    with pytest.raises(SpectraError):
        exact_svd(J, method="qr")
    with pytest.raises(SpectraError):
        exact_svd(torch.randn(3))
    bad = J.clone()
    bad[1, 1] = float("inf")
    with pytest.raises(SpectraError, match="NaN or Inf"):
        singular_values(bad)
    with pytest.raises(SpectraError):
        singular_values_from_gram(torch.randn(3, 4, dtype=F64))
    with pytest.raises(SpectraError):
        effective_rank(torch.zeros(3))
    with pytest.raises(SpectraError):
        condition_number(torch.tensor([1.0, -1.0]))
    with pytest.raises(SpectraError):
        condition_number(torch.tensor([2.0, 1.0]), rank=3)
