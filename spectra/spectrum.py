"""Singular values and vectors of a Jacobian: exact, through the Gram, or top-k on the implicit operator.

For J ∈ R^{N×p} with SVD J = U Σ Vᵀ (σ_1 ≥ σ_2 ≥ ...):

* the Gram G = J Jᵀ = U Σ² Uᵀ, so σ_i = sqrt(λ_i(G)) and U are G's eigenvectors; the right
  vectors follow from V = Jᵀ U Σ⁻¹ (for σ_i > 0). When N ≪ p this is much cheaper than an SVD of J.
* top-k σ on the implicit operator (J v, Jᵀ u from :class:`spectra.jacobian.JacobianOperator`)
  with ``scipy.sparse.linalg.svds`` (ARPACK Lanczos on JᵀJ), never forming J.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from spectra.errors import SpectraError
from spectra.jacobian import JacobianOperator, check_finite

__all__ = [
    "SVDResult",
    "singular_values",
    "exact_svd",
    "svd_from_gram",
    "singular_values_from_gram",
    "top_k_svd",
    "condition_number",
    "effective_rank",
    "stable_rank",
    "numerical_rank",
]


@dataclass
class SVDResult:
    """Thin SVD J ≈ U diag(S) Vᵀ with S descending; ``U``/``V`` may be ``None`` when not requested."""

    S: Tensor
    U: Tensor | None = None
    V: Tensor | None = None


def _matrix(a: Tensor, name: str) -> Tensor:
    if not isinstance(a, Tensor):
        raise SpectraError(f"{name} must be a torch.Tensor, got {type(a).__name__}")
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise SpectraError(f"{name} must be a non-empty 2-D matrix, got shape {tuple(a.shape)}")
    if not a.is_floating_point():
        raise SpectraError(f"{name} must be floating point, got {a.dtype}")
    check_finite(a, name)
    return a


def _vector(s: Tensor, name: str) -> Tensor:
    s = torch.as_tensor(s)
    if s.ndim != 1 or s.shape[0] == 0:
        raise SpectraError(f"{name} must be a non-empty 1-D tensor, got shape {tuple(s.shape)}")
    if not s.is_floating_point():
        s = s.double()
    check_finite(s, name)
    if bool((s < 0).any()):
        raise SpectraError(f"{name} must be non-negative singular values")
    return s


def singular_values(J: Tensor) -> Tensor:
    """All min(N, p) singular values of J, descending (``torch.linalg.svdvals``)."""
    return torch.linalg.svdvals(_matrix(J, "J"))


def singular_values_from_gram(G: Tensor) -> Tensor:
    """σ_i = sqrt(max(λ_i(G), 0)) from a symmetric PSD Gram G = J Jᵀ, descending."""
    G = _matrix(G, "G")
    if G.shape[0] != G.shape[1]:
        raise SpectraError(f"G must be square, got shape {tuple(G.shape)}")
    lam = torch.linalg.eigvalsh(0.5 * (G + G.T))
    return lam.flip(0).clamp_min(0).sqrt()


def svd_from_gram(G: Tensor, J: Tensor | JacobianOperator | None = None, *, rtol: float | None = None) -> SVDResult:
    """SVD of J from its Gram G = J Jᵀ: eigh(G) = U Σ² Uᵀ; V = Jᵀ U Σ⁻¹ if J is given.

    Columns of V for σ_i ≤ rtol·σ_1 (default rtol = sqrt(N·eps): the accuracy of σ from eigh(G))
    are left zero (there the right vector is not determined reliably by G). J may be a matrix or a
    :class:`JacobianOperator` (V is then computed with one Jᵀ u pass per vector).
    """
    G = _matrix(G, "G")
    if G.shape[0] != G.shape[1]:
        raise SpectraError(f"G must be square, got shape {tuple(G.shape)}")
    lam, U = torch.linalg.eigh(0.5 * (G + G.T))
    lam, U = lam.flip(0), U.flip(1)
    S = lam.clamp_min(0).sqrt()
    V = None
    if J is not None:
        if J.shape[0] != G.shape[0]:
            raise SpectraError(f"J has {J.shape[0]} rows but G is {G.shape[0]}×{G.shape[0]}")
        JtU = J.rmatmat(U) if isinstance(J, JacobianOperator) else J.T @ U.to(J.dtype)
        if rtol is None:
            # σ from eigh(G) has absolute error ~ sqrt(N·eps)·σ_1: below that, directions are noise
            rtol = (G.shape[0] * torch.finfo(S.dtype).eps) ** 0.5
        keep = S > rtol * S[0]
        V = torch.zeros(J.shape[1], S.shape[0], dtype=JtU.dtype, device=JtU.device)
        V[:, keep] = JtU[:, keep] / S[keep].to(JtU.dtype)
    return SVDResult(S=S, U=U, V=V)


def exact_svd(J: Tensor, *, method: str = "auto", compute_vectors: bool = True) -> SVDResult:
    """Thin SVD of a materialised J (N × p), descending.

    ``method``: ``"svd"`` (``torch.linalg.svd``), ``"gram"`` (eigh of J Jᵀ, cheaper when N ≪ p
    but loses relative accuracy for σ_i below ~sqrt(eps)·σ_1), or ``"auto"`` (gram when
    4·N < p, else svd).
    """
    J = _matrix(J, "J")
    if method not in ("auto", "svd", "gram"):
        raise SpectraError(f"unknown method {method!r}; use auto, svd or gram")
    N, p = J.shape
    if method == "gram" or (method == "auto" and 4 * N < p):
        res = svd_from_gram(J @ J.T, J if compute_vectors else None)
        if not compute_vectors:
            res.U = None
        return res
    if not compute_vectors:
        return SVDResult(S=torch.linalg.svdvals(J))
    U, S, Vh = torch.linalg.svd(J, full_matrices=False)
    return SVDResult(S=S, U=U, V=Vh.T)


def top_k_svd(
    J: Tensor | JacobianOperator,
    k: int,
    *,
    tol: float = 0.0,
    seed: int | None = 0,
    return_vectors: bool = False,
) -> SVDResult:
    """The k largest singular triplets of J by ``scipy.sparse.linalg.svds`` (ARPACK, float64).

    ``J`` may be a dense matrix or a :class:`JacobianOperator` (then only J v and Jᵀ u are
    used — J is never formed). Requires 1 ≤ k < min(N, p). ``seed`` fixes ARPACK's start vector.
    """
    from scipy.sparse.linalg import LinearOperator, svds

    if isinstance(J, JacobianOperator):
        op = J.to_scipy()
        device, dtype = J.device, J.dtype
    else:
        J = _matrix(J, "J")
        device, dtype = J.device, J.dtype
        Jn = J.detach().cpu().double().numpy()
        op = LinearOperator(Jn.shape, matvec=lambda v: Jn @ v, rmatvec=lambda u: Jn.T @ u, dtype=np.float64)
    N, p = op.shape
    if not isinstance(k, int) or not (1 <= k < min(N, p)):
        raise SpectraError(f"k must be an integer in [1, {min(N, p) - 1}] for a {N}×{p} Jacobian, got {k!r}")
    v0 = None
    if seed is not None:
        v0 = np.random.default_rng(seed).standard_normal(min(N, p))
    if not return_vectors:
        s = svds(op, k=k, tol=tol, v0=v0, return_singular_vectors=False)
        return SVDResult(S=torch.from_numpy(np.ascontiguousarray(np.sort(s)[::-1])).to(device=device, dtype=dtype))
    u, s, vt = svds(op, k=k, tol=tol, v0=v0)
    order = np.argsort(s)[::-1]
    S = torch.from_numpy(np.ascontiguousarray(s[order])).to(device=device, dtype=dtype)
    U = torch.from_numpy(np.ascontiguousarray(u[:, order])).to(device=device, dtype=dtype)
    V = torch.from_numpy(np.ascontiguousarray(vt[order].T)).to(device=device, dtype=dtype)
    return SVDResult(S=S, U=U, V=V)


def numerical_rank(s: Tensor, *, rtol: float | None = None) -> int:
    """Number of σ_i > rtol·σ_1 (default rtol = len(s)·eps of the dtype)."""
    s = _vector(s, "s")
    if rtol is None:
        rtol = s.shape[0] * torch.finfo(s.dtype).eps
    smax = float(s.max())
    return int((s > rtol * smax).sum()) if smax > 0 else 0


def condition_number(s: Tensor, *, rank: int | None = None) -> float:
    """σ_max / σ_min over the given singular values (∞ if σ_min = 0).

    ``rank=r`` uses σ_1/σ_r instead (the condition number restricted to the top-r part — the
    meaningful one for a rank-deficient Jacobian; pair with :func:`numerical_rank`).
    """
    s = _vector(s, "s")
    s = torch.sort(s, descending=True).values
    if rank is not None:
        if not isinstance(rank, int) or not (1 <= rank <= s.shape[0]):
            raise SpectraError(f"rank must be in [1, {s.shape[0]}], got {rank!r}")
        s = s[:rank]
    smin = float(s[-1])
    return float("inf") if smin == 0 else float(s[0]) / smin


def effective_rank(s: Tensor) -> float:
    """Entropy effective rank (Roy & Vetterli 2007): exp(H(q)), q_i = σ_i / Σ_j σ_j. In [1, len(s)]."""
    s = _vector(s, "s").double()
    total = float(s.sum())
    if total == 0:
        raise SpectraError("effective rank is undefined for an all-zero spectrum")
    q = s / total
    q = q[q > 0]
    return float(torch.exp(-(q * q.log()).sum()))


def stable_rank(s: Tensor) -> float:
    """Stable rank ||J||_F² / ||J||_2² = Σσ_i² / σ_1²."""
    s = _vector(s, "s").double()
    smax = float(s.max())
    if smax == 0:
        raise SpectraError("stable rank is undefined for an all-zero spectrum")
    return float((s**2).sum()) / smax**2
