"""The coreset side of the theory: gradient alignment error ξ and linearised residual dynamics.

Notation: J̃ ∈ R^{N×p} the Jacobian on the (augmented) full data, N = n·k rows (k outputs per
example, example-major as in :mod:`spectra.jacobian`) or N = n (one output per example);
r̃ ∈ R^N the residual, so J̃ᵀ r̃ is the full-data gradient of the loss. A weighted subset
(S, γ) of *examples* (indices into 0..n−1 and one weight per index) takes all k rows of each
chosen example.

* alignment error (``scale="sum"``, the definition in the project brief):
      ξ(S, γ) = || J̃ᵀ r̃ − J̃_Sᵀ diag(γ) r̃_S ||_2
  — γ should then sum to ≈ n (e.g. facility-location cluster sizes);
  ``scale="mean"`` compares mean gradients instead, invariant to rescaling γ:
      ξ(S, γ) = || J̃ᵀ r̃ / n − J̃_Sᵀ diag(γ) r̃_S / Σγ ||_2
  (matching mean-1-normalised weights and a mean-reduced weighted loss, as in the paper's code).
* linearised dynamics (squared-loss model, Oymak et al.; gradient step θ ← θ − η J_Sᵀ diag(γ) r_S):
      full data:  r_{t+1} = (I − η J Jᵀ) r_t
      subset:     r_{t+1} = r_t − η J J_Sᵀ diag(γ) r_{t,S} = r_t − η G[:, S] diag(γ) r_t[S]
  i.e. the residual on *all* examples while the parameters are updated from the weighted subset
  (G = J Jᵀ). Both are projected on the left singular vectors u_i of J (eigenvectors of G):
  for full data u_iᵀ r_t = (1 − η σ_i²)^t u_iᵀ r_0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from spectra.errors import SpectraError
from spectra.jacobian import JacobianOperator, check_finite

__all__ = [
    "Subset",
    "residuals",
    "alignment_error",
    "alignment_errors",
    "ResidualDynamics",
    "residual_dynamics",
    "gram_eigh",
]

#: A weighted subset of examples: ``(indices, weights)``; ``weights=None`` means all ones.
Subset = tuple[Union[Tensor, Sequence[int]], Union[Tensor, Sequence[float], None]]


def residuals(logits: Tensor, y: Tensor, *, kind: str = "ce") -> Tensor:
    """Per-example residuals r (n, k) whose Jᵀ-product is the loss gradient.

    ``"ce"``: softmax(z) − onehot(y) = ∂CE/∂z (the paper's gradient proxy);
    ``"mse"``: z − onehot(y) = ∂(½||z − onehot(y)||²)/∂z.
    With a one-output-per-example Jacobian (true-class logit), use ``r[arange(n), y]``.
    """
    if not isinstance(logits, Tensor) or logits.ndim != 2 or not logits.is_floating_point():
        raise SpectraError("logits must be a floating (n, k) tensor")
    check_finite(logits, "logits")
    y = torch.as_tensor(y, device=logits.device)
    if y.shape != (logits.shape[0],) or y.dtype.is_floating_point:
        raise SpectraError(f"y must be integer labels of shape ({logits.shape[0]},)")
    if int(y.min()) < 0 or int(y.max()) >= logits.shape[1]:
        raise SpectraError(f"labels must lie in [0, {logits.shape[1]})")
    onehot = F.one_hot(y.long(), logits.shape[1]).to(logits.dtype)
    if kind == "ce":
        return logits.softmax(dim=1) - onehot
    if kind == "mse":
        return logits - onehot
    raise SpectraError(f"unknown residual kind {kind!r}; use 'ce' or 'mse'")


def _flat_residual(J_rows: int, r: Tensor) -> tuple[Tensor, int, int]:
    """Flatten r to (N,), returning (r, n examples, rows per example)."""
    r = torch.as_tensor(r)
    if not r.is_floating_point():
        raise SpectraError(f"r must be floating point, got {r.dtype}")
    check_finite(r, "r")
    if r.ndim == 1:
        n, k = r.shape[0], 1
    elif r.ndim == 2:
        n, k = r.shape
    else:
        raise SpectraError(f"r must be (n,) or (n, k), got shape {tuple(r.shape)}")
    if n * k != J_rows:
        raise SpectraError(f"r has {n}×{k} entries but J has {J_rows} rows")
    return r.reshape(-1), n, k


def _subset(sub: Subset, n: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    if not isinstance(sub, (tuple, list)) or len(sub) != 2:
        raise SpectraError("a subset must be a pair (indices, weights or None)")
    idx, w = sub
    idx = torch.as_tensor(idx, device=device)
    if idx.ndim != 1 or idx.dtype.is_floating_point or idx.dtype == torch.bool:
        raise SpectraError("subset indices must be a 1-D integer tensor/sequence")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise SpectraError(f"subset indices must lie in [0, {n})")
    if w is None:
        w = torch.ones(idx.shape[0], device=device, dtype=dtype)
    else:
        w = torch.as_tensor(w, device=device).to(dtype)
        if w.shape != idx.shape:
            raise SpectraError(f"weights must have the shape of indices {tuple(idx.shape)}, got {tuple(w.shape)}")
        check_finite(w, "weights")
    return idx.long(), w


def _rows(idx: Tensor, k: int) -> Tensor:
    """Example indices → row indices of an example-major (n·k)-row matrix."""
    return (idx.unsqueeze(1) * k + torch.arange(k, device=idx.device)).reshape(-1)


def _jt(J: Tensor | JacobianOperator, u: Tensor) -> Tensor:
    return J.rmatvec(u) if isinstance(J, JacobianOperator) else J.T @ u.to(J.dtype)


def _check_J(J: Tensor | JacobianOperator) -> tuple[int, torch.device, torch.dtype]:
    if isinstance(J, JacobianOperator):
        return J.shape[0], J.device, J.dtype
    if not isinstance(J, Tensor) or J.ndim != 2 or not J.is_floating_point():
        raise SpectraError("J must be a floating (N, p) tensor or a JacobianOperator")
    check_finite(J, "J")
    return J.shape[0], J.device, J.dtype


def _subset_gradient(J: Tensor | JacobianOperator, r: Tensor, idx: Tensor, w: Tensor, k: int) -> Tensor:
    """J_Sᵀ diag(γ) r_S (γ repeated over the k rows of each example)."""
    rows = _rows(idx, k)
    u = r[rows] * w.repeat_interleave(k)
    if isinstance(J, JacobianOperator):
        if J.rows_per_example != k:
            raise SpectraError("r's outputs per example do not match the operator")
        return J.subset(idx).rmatvec(u)
    return J[rows].T @ u.to(J.dtype)


def alignment_error(
    J: Tensor | JacobianOperator,
    r: Tensor,
    indices: Tensor | Sequence[int],
    weights: Tensor | Sequence[float] | None = None,
    *,
    scale: str = "sum",
) -> float:
    """ξ(S, γ) = ||J̃ᵀ r̃ − J̃_Sᵀ diag(γ) r̃_S||₂ (``scale="sum"``) or the mean-gradient version.

    ``J`` is a materialised (N, p) matrix or a :class:`JacobianOperator` (then only Jᵀ u products
    are used). ``r`` is (n,) or (n, k) matching J's rows. See the module docstring.
    """
    return alignment_errors(J, r, {"S": (indices, weights)}, scale=scale)[0]["xi"]


def alignment_errors(
    J: Tensor | JacobianOperator,
    r: Tensor,
    subsets: Mapping[str, Subset | Sequence[Subset]],
    *,
    scale: str = "sum",
) -> list[dict]:
    """ξ for many named subsets (e.g. ``{"coreset": [(idx, w) for each size], "random": [...]}``).

    Returns one row per subset: ``{"name", "size", "weight_sum", "xi", "xi_relative"}`` with
    ``xi_relative = ξ / ||J̃ᵀ r̃||`` (for ``scale="mean"``: relative to ||J̃ᵀ r̃ / n||). The
    full gradient J̃ᵀ r̃ is computed once.
    """
    if scale not in ("sum", "mean"):
        raise SpectraError(f"unknown scale {scale!r}; use 'sum' or 'mean'")
    N, device, dtype = _check_J(J)
    r, n, k = _flat_residual(N, r)
    r = r.to(device=device, dtype=dtype)
    if not isinstance(subsets, Mapping) or not subsets:
        raise SpectraError("subsets must be a non-empty mapping name -> (indices, weights) or a list of them")
    full = _jt(J, r)
    if scale == "mean":
        full = full / n
    full_norm = float(full.norm())
    rows = []
    for name, entry in subsets.items():
        is_single = isinstance(entry, tuple) and len(entry) == 2 and not isinstance(entry[0], tuple)
        entries = [entry] if is_single else list(entry)
        for sub in entries:
            idx, w = _subset(sub, n, device, dtype)
            g = _subset_gradient(J, r, idx, w, k) if idx.numel() else torch.zeros_like(full)
            if scale == "mean":
                wsum = float(w.sum())
                if wsum == 0:
                    raise SpectraError(f"subset {name!r} has zero total weight")
                g = g / wsum
            xi = float((full - g).norm())
            rows.append({
                "name": str(name),
                "size": int(idx.numel()),
                "weight_sum": float(w.sum()),
                "xi": xi,
                "xi_relative": xi / full_norm if full_norm > 0 else float("nan"),
            })
    return rows


@dataclass
class ResidualDynamics:
    """Trajectory of the linearised residual: ``residuals`` (T+1, N), ``projections`` (T+1, N)
    with ``projections[t, i] = u_iᵀ r_t`` (u_i the i-th left singular vector of J, σ descending),
    ``sigma`` (N,), ``U`` (N, N) and ``loss`` (T+1,) = ½||r_t||²."""

    residuals: Tensor
    projections: Tensor
    sigma: Tensor
    U: Tensor
    loss: Tensor


def gram_eigh(G: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenpairs of the symmetric part of G, eigenvalues descending: (λ (N,), U (N, N))."""
    lam, U = torch.linalg.eigh(0.5 * (G + G.T))
    return lam.flip(0), U.flip(1)


def residual_dynamics(
    G: Tensor,
    r0: Tensor,
    eta: float,
    steps: int,
    *,
    subset: Subset | None = None,
    scale: str = "sum",
    eig: tuple[Tensor, Tensor] | None = None,
) -> ResidualDynamics:
    """Linearised residual dynamics on full data, or driven by a weighted subset (see module doc).

    ``eig``: the (descending) eigenpairs of G from :func:`gram_eigh`, to reuse one
    eigendecomposition across several runs on the same G; computed here when omitted.

    ``G`` = J Jᵀ (N, N) on the full (augmented) data; ``r0`` (n,) or (n, k) matching its rows;
    ``subset=(indices, weights)`` over examples. ``scale="mean"`` divides the step by n (full)
    or Σγ (subset) — mean-reduced losses; ``"sum"`` uses η as is. Full-data iteration is stable
    for η·σ_1² < 2.
    """
    if not isinstance(G, Tensor) or G.ndim != 2 or G.shape[0] != G.shape[1] or not G.is_floating_point():
        raise SpectraError("G must be a square floating (N, N) tensor")
    check_finite(G, "G")
    if scale not in ("sum", "mean"):
        raise SpectraError(f"unknown scale {scale!r}; use 'sum' or 'mean'")
    try:
        eta = float(eta)
    except (TypeError, ValueError):
        raise SpectraError(f"eta must be a positive number, got {eta!r}") from None
    if not eta > 0 or eta == float("inf"):
        raise SpectraError(f"eta must be a positive finite number, got {eta!r}")
    if not isinstance(steps, int) or steps < 0:
        raise SpectraError(f"steps must be a non-negative integer, got {steps!r}")
    N = G.shape[0]
    r, n, k = _flat_residual(N, r0)
    r = r.to(device=G.device, dtype=G.dtype)
    G = 0.5 * (G + G.T)
    lam, U = gram_eigh(G) if eig is None else eig
    if subset is None:
        M = G * (eta / n if scale == "mean" else eta)  # r ← r − η G r
        cols, wrows = None, None
    else:
        idx, w = _subset(subset, n, G.device, G.dtype)
        cols = _rows(idx, k)
        wrows = w.repeat_interleave(k)
        step = eta / float(w.sum()) if scale == "mean" else eta
        M = G[:, cols] * (wrows * step).unsqueeze(0)  # r ← r − η G[:, S] diag(γ) r[S]
    traj = [r]
    for _ in range(steps):
        r = r - (M @ r if cols is None else M @ r[cols])
        traj.append(r)
    R = torch.stack(traj)
    return ResidualDynamics(
        residuals=R,
        projections=R @ U,
        sigma=lam.clamp_min(0).sqrt(),
        U=U,
        loss=0.5 * (R**2).sum(dim=1),
    )
