"""GradMatch (Killamsetty et al. 2021, "GRAD-MATCH: gradient matching based data subset selection"),
per class, on gradient proxies; returns weights.

Per class ``c`` with gradient proxies ``g_i`` (``i ∈ V_c``), find a small weighted set whose weighted
gradient sum matches the class's full gradient sum ``b = Σ_{i∈V_c} g_i`` (``target="sum"``; or the
mean with ``target="mean"``):

    min_{S, w ≥ 0}  ‖ Σ_{j∈S} w_j g_j − b ‖² + λ ‖w‖²,   |S| ≤ k_c          (paper eq. (5))

by orthogonal matching pursuit (Pati et al. 1993; non-negative, as in the paper's Alg. 1): with
residual ``r = b − A_S w`` (``A_S`` = the chosen proxies as columns) repeatedly add the unchosen
point with the largest positive correlation ``g_jᵀ r``, then re-solve the weights on the whole
support with the non-negative ridge problem above. The re-solve is exact:

* ``λ > 0`` (default 0.5, CORDS' default): through its dual, a ``d``-dimensional strongly convex,
  piecewise-quadratic problem in the residual, ``min_r ½‖r‖² − bᵀr + ‖relu(A_Sᵀ r)‖²/(2λ)``, solved
  by semismooth Newton with backtracking (warm-started from the previous residual); the primal
  solution is ``w = relu(A_Sᵀ r)/λ`` and ``r = b − A_S w`` at the optimum (KKT).
* ``λ = 0``: plain NNLS (``scipy.optimize.nnls``, Lawson–Hanson) — slow for large budgets.

OMP stops early when no unchosen point has a positive correlation with the residual. As in CORDS,
support points whose weight is 0 are dropped and the remaining budget is filled with seeded random
points of the class (``info["filled"]`` counts them), but at weight **0**, not CORDS' 1: the fit is then
exactly OMP's (with ``λ = 0`` and an exact fit the residual stays 0, where weight-1 fillers left a
relative residual of 2–4e-2). The fillers still count towards the budget and their strong-augmented
copies are trained on (at weight 1 with ``aug_weight="one"``). Only a class where OMP kept no point
at all (its gradient sum is 0: nothing to match) fills at weight 1, so its points are not all weightless.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from coreaug.errors import SelectionError
from coreaug.select.base import Selection, as_features
from coreaug.select.common import finish, split_budgets

__all__ = ["nn_ridge", "omp_nonneg", "gradmatch_subset"]


def _solve_newton(a_p: torch.Tensor, v: torch.Tensor, lam: float) -> torch.Tensor:
    """``(I + A_P A_Pᵀ/λ)⁻¹ v`` directly (d × d) or by Woodbury (|P| × |P|), whichever is smaller."""
    d, p = a_p.shape
    if p == 0:
        return v.clone()
    if p < d:  # Woodbury: v − A_P (λ I + A_Pᵀ A_P)⁻¹ A_Pᵀ v
        m = a_p.T @ a_p
        m.diagonal().add_(lam)
        return v - a_p @ torch.linalg.solve(m, a_p.T @ v)
    h = (a_p @ a_p.T) / lam
    h.diagonal().add_(1.0)
    return torch.linalg.solve(h, v)


def nn_ridge(a: torch.Tensor, b: torch.Tensor, lam: float, r0: torch.Tensor | None = None,
             *, tol: float = 1e-12, max_iter: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """``argmin_{w ≥ 0} ‖A w − b‖² + λ‖w‖²`` for ``A`` of shape ``(d, s)`` (float64): ``(w, r = b − A w)``.

    ``λ > 0``: semismooth Newton on the dual (module docstring); ``λ = 0``: ``scipy.optimize.nnls``.
    """
    if lam == 0:
        from scipy.optimize import nnls

        w_np, _ = nnls(a.cpu().numpy(), b.cpu().numpy(), maxiter=50 * max(1, a.shape[1]))
        w = torch.from_numpy(np.asarray(w_np)).to(b)
        return w, b - a @ w
    r = b.clone() if r0 is None else r0.clone()
    scale = float(b.norm()) + 1.0

    def phi(r_: torch.Tensor) -> float:
        z = torch.relu(a.T @ r_)
        return float(0.5 * r_.dot(r_) - b.dot(r_) + z.dot(z) / (2.0 * lam))

    for _ in range(max_iter):
        z = a.T @ r
        grad = r - b + a @ torch.relu(z) / lam
        if float(grad.norm()) <= tol * scale:
            break
        step = _solve_newton(a[:, z > 0], grad, lam)
        f0, slope, t = phi(r), float(grad.dot(step)), 1.0
        while t > 1e-12 and phi(r - t * step) > f0 - 1e-4 * t * slope:  # Armijo backtracking
            t *= 0.5
        r = r - t * step
    w = torch.relu(a.T @ r) / lam
    return w, b - a @ w


def omp_nonneg(g: torch.Tensor, b: torch.Tensor, k: int, lam: float) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """Non-negative OMP over the rows of ``g`` (``(n, d)``, float64) towards ``b``.

    Returns ``(support in pick order, weights on it, final residual)``; at most ``k`` picks.
    """
    n = int(g.shape[0])
    taken = torch.zeros(n, dtype=torch.bool, device=g.device)
    support: list[int] = []
    w = torch.empty(0, dtype=g.dtype, device=g.device)
    r = b.clone()
    for _ in range(min(k, n)):
        corr = g @ r
        corr.masked_fill_(taken, -math.inf)
        j = int(torch.argmax(corr))  # first maximum → lower position
        if not float(corr[j]) > 0.0:
            break  # no unchosen point can reduce the objective
        support.append(j)
        taken[j] = True
        w, r = nn_ridge(g[support].T, b, lam, r0=r)
    return support, w, r


def gradmatch_subset(
    features: torch.Tensor,
    labels: torch.Tensor,
    budget_or_fraction: int | float | Any,
    *,
    lam: float = 0.5,
    target: str = "sum",
    num_classes: int | None = None,
    per_class: str = "proportional",
    seed: int = 0,
) -> Selection:
    """Per-class GradMatch on ``(n, d)`` gradient proxies; ``weights`` are the OMP weights (fillers: 0).

    ``info`` holds per class the OMP ``support`` (positions, pick order), ``relative_residual``
    ``‖r‖/‖b‖`` and ``filled``. Raises :class:`SelectionError` on NaN, bad labels/budgets,
    ``lam < 0`` or an unknown ``target``.
    """
    if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam >= 0):
        raise SelectionError(f"GradMatch lam must be a finite number >= 0, got {lam!r}")
    if target not in ("sum", "mean"):
        raise SelectionError(f"GradMatch target must be 'sum' or 'mean', got {target!r}")
    x = as_features(features)
    y, classes, members, budgets = split_budgets(labels, x.shape[0], budget_or_fraction, num_classes, per_class)
    gen = torch.Generator().manual_seed(int(seed))
    picked, weights, supports, residuals, filled = [], [], [], [], []
    for mem, k in zip(members, budgets):
        if k == 0:
            supports.append([]), residuals.append(None), filled.append(0)
            continue
        g = x.index_select(0, mem.to(x.device)).to("cpu", torch.float64)
        b = g.sum(dim=0) if target == "sum" else g.mean(dim=0)
        support, w, r = omp_nonneg(g, b, k, float(lam))
        keep = w > 0
        pos = torch.tensor(support, dtype=torch.long)[keep]
        wk = w[keep]
        rest = k - pos.numel()
        if rest > 0:  # fill the budget with random points of the class, at weight 0 (module docstring)
            free = torch.ones(mem.numel(), dtype=torch.bool)
            free[pos] = False
            cand = free.nonzero().flatten()
            extra = cand[torch.randperm(cand.numel(), generator=gen)[:rest]]
            fill = 0.0 if pos.numel() else 1.0  # no OMP point kept: nothing to match, keep the class weighted
            pos = torch.cat([pos, extra])
            wk = torch.cat([wk, torch.full((extra.numel(),), fill, dtype=wk.dtype)])
        picked.append(mem[pos])
        weights.append(wk)
        supports.append(mem[torch.tensor(support, dtype=torch.long)].tolist())
        residuals.append(float(r.norm() / max(float(b.norm()), 1e-300)))
        filled.append(int(max(rest, 0)))
    info = {"method": "gradmatch", "lam": float(lam), "target": target, "per_class": per_class, "classes": classes,
            "budgets": budgets, "support": supports, "relative_residual": residuals, "filled": filled}
    return finish(picked, weights, info)
