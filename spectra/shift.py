"""What a perturbation does to a Jacobian's spectrum, and numerical checks of the classical bounds.

Setting: A = J(x) (clean), Ã = J(x + δ) = A + E (perturbed, same shape), singular values
σ_1 ≥ σ_2 ≥ ... . The checks evaluate the bound and the measured quantity side by side and
report whether ``measured ≤ bound·(1 + rtol) + atol`` (a small tolerance absorbs rounding).

* :func:`relative_shift` — (σ_i(Ã) − σ_i(A)) / σ_i(A) for each i; :func:`shift_summary`
  compares the mean relative change of the smallest vs the largest singular values (the paper's
  qualitative claim: augmentation enlarges small σ relatively more and keeps the top directions).
* :func:`principal_angles` — angles between the top-r singular subspaces.
* :func:`weyl_check` — Weyl: max_i |σ_i(A + E) − σ_i(A)| ≤ ||E||_2.
* :func:`wedin_check` — Wedin's sin Θ theorem (spectral-norm form, Stewart & Sun V.4.4, with
  α = σ_{r+1}(A)): if δ = σ_r(Ã) − σ_{r+1}(A) > 0 then
  max(||sin Θ(U_r, Ũ_r)||_2, ||sin Θ(V_r, Ṽ_r)||_2) ≤ max(||E Ṽ_r||_2, ||Eᵀ Ũ_r||_2) / δ ≤ ||E||_2 / δ.
* :func:`davis_kahan_check` — Davis–Kahan sin Θ for symmetric G, G̃ = G + H (e.g. Grams J Jᵀ):
  if δ = λ_r(G) − λ_{r+1}(G̃) > 0 then ||sin Θ(U_r, Ũ_r)||_2 ≤ ||H U_r||_2 / δ ≤ ||H||_2 / δ.
* :func:`stacked_check` — augmentation that *appends* copies: for B = [A; Ã],
  BᵀB = AᵀA + ÃᵀÃ ⪰ AᵀA so σ_i(B) ≥ σ_i(A) for all i, and with Ã = A + E,
  BᵀB = 2AᵀA + (AᵀE + EᵀA + EᵀE), so by Weyl |σ_i(B)² − 2σ_i(A)²| ≤ 2σ_1(A)||E||_2 + ||E||_2².
  (These are derived facts used as checks, not the paper's own theorem statements.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from spectra.errors import SpectraError
from spectra.jacobian import check_finite

__all__ = [
    "BoundCheck",
    "relative_shift",
    "shift_summary",
    "principal_angles",
    "sin_theta",
    "weyl_check",
    "wedin_check",
    "davis_kahan_check",
    "stacked_check",
    "shift_report_from_gram",
]


@dataclass
class BoundCheck:
    """A bound evaluated numerically: ``holds`` iff ``measured <= bound*(1+rtol) + atol``.

    ``details`` holds the intermediate quantities (gap, ||E||, per-index values...).
    """

    name: str
    statement: str
    bound: float
    measured: float
    holds: bool
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["details"] = {k: (v.tolist() if isinstance(v, Tensor) else v) for k, v in self.details.items()}
        return d


def _mat(a: Tensor, name: str) -> Tensor:
    if not isinstance(a, Tensor):
        raise SpectraError(f"{name} must be a torch.Tensor, got {type(a).__name__}")
    if a.ndim != 2 or 0 in a.shape:
        raise SpectraError(f"{name} must be a non-empty 2-D matrix, got shape {tuple(a.shape)}")
    if not a.is_floating_point():
        raise SpectraError(f"{name} must be floating point, got {a.dtype}")
    check_finite(a, name)
    return a


def _pair(A: Tensor, A_pert: Tensor) -> tuple[Tensor, Tensor]:
    A, A_pert = _mat(A, "A"), _mat(A_pert, "A_pert")
    if A.shape != A_pert.shape:
        raise SpectraError(f"A and A_pert must have the same shape, got {tuple(A.shape)} and {tuple(A_pert.shape)}")
    dt = torch.promote_types(A.dtype, A_pert.dtype)
    return A.to(dt), A_pert.to(device=A.device, dtype=dt)


def _holds(measured: float, bound: float, rtol: float, atol: float) -> bool:
    return bool(measured <= bound * (1.0 + rtol) + atol)


def _sv(s: Tensor, name: str) -> Tensor:
    s = torch.as_tensor(s)
    if s.ndim != 1 or s.shape[0] == 0:
        raise SpectraError(f"{name} must be a non-empty 1-D tensor, got shape {tuple(s.shape)}")
    s = s.double() if not s.is_floating_point() else s
    check_finite(s, name)
    return s


def relative_shift(s_clean: Tensor, s_pert: Tensor, *, rtol: float | None = None) -> Tensor:
    """(σ̃_i − σ_i) / σ_i for i = 1..min(len); NaN where σ_i ≤ rtol·σ_1 (default: len·eps)."""
    s, t = _sv(s_clean, "s_clean"), _sv(s_pert, "s_pert")
    m = min(s.shape[0], t.shape[0])
    s, t = s[:m], t[:m].to(s.dtype)
    if rtol is None:
        rtol = s.shape[0] * torch.finfo(s.dtype).eps
    out = (t - s) / s
    out[s <= rtol * s.max()] = float("nan")
    return out


def shift_summary(s_clean: Tensor, s_pert: Tensor, *, frac: float = 0.1) -> dict[str, float]:
    """Mean relative change of the top and bottom ``frac`` of the (non-degenerate) spectrum.

    Returns ``{"top_rel_change", "bottom_rel_change", "ratio_bottom_over_top", "n_top",
    "n_bottom", "sigma_max_rel_change", "sigma_min_rel_change"}`` — ratio > 1 means small
    singular values moved relatively more than large ones (NaN entries are ignored).
    """
    if not (0 < frac <= 0.5):
        raise SpectraError(f"frac must be in (0, 0.5], got {frac!r}")
    rel = relative_shift(s_clean, s_pert)
    valid = rel[~torch.isnan(rel)]
    if valid.numel() == 0:
        raise SpectraError("no non-zero singular values to compare")
    m = max(1, int(round(frac * valid.numel())))
    top, bottom = valid[:m], valid[-m:]
    top_mean, bottom_mean = float(top.mean()), float(bottom.mean())
    return {
        "top_rel_change": top_mean,
        "bottom_rel_change": bottom_mean,
        "ratio_bottom_over_top": (abs(bottom_mean) / abs(top_mean)) if top_mean != 0 else float("inf"),
        "n_top": m,
        "n_bottom": m,
        "sigma_max_rel_change": float(valid[0]),
        "sigma_min_rel_change": float(valid[-1]),
    }


def principal_angles(U1: Tensor, U2: Tensor) -> Tensor:
    """Principal angles θ_1 ≤ ... ≤ θ_r (radians) between span(U1) and span(U2).

    Both are (d, r) with independent columns (orthonormalised here by QR);
    cos θ_j are the singular values of Q1ᵀ Q2, so ||sin Θ||_2 = sin θ_max.
    """
    Q1, Q2 = _orth_pair(U1, U2)
    if Q2.shape[1] > Q1.shape[1]:  # angles are symmetric; make span(Q2) the smaller one
        Q1, Q2 = Q2, Q1
    M = Q1.T @ Q2
    ang_cos = torch.arccos(torch.linalg.svdvals(M).clamp(0.0, 1.0))  # ascending angles
    # the same angles from their sines, accurate near 0 (arccos loses half the digits there):
    # singular values of (I − Q1 Q1ᵀ) Q2 (Knyazev & Argentati 2002), descending → flip
    ang_sin = torch.arcsin(torch.linalg.svdvals(Q2 - Q1 @ M).clamp(0.0, 1.0)).flip(0)
    angles = torch.where(ang_cos < torch.pi / 4, ang_sin, ang_cos)
    return angles.sort().values


def _orth_pair(U1: Tensor, U2: Tensor) -> tuple[Tensor, Tensor]:
    U1, U2 = _mat(U1, "U1"), _mat(U2, "U2")
    if U1.shape[0] != U2.shape[0]:
        raise SpectraError(f"subspaces live in different spaces: {U1.shape[0]} vs {U2.shape[0]} rows")
    dt = torch.promote_types(U1.dtype, U2.dtype)
    Q1 = torch.linalg.qr(U1.to(dt)).Q
    Q2 = torch.linalg.qr(U2.to(device=U1.device, dtype=dt)).Q
    return Q1, Q2


def sin_theta(U1: Tensor, U2: Tensor) -> float:
    """||sin Θ(U1, U2)||_2 = ||(I − Q1 Q1ᵀ) Q2||_2 for subspaces of equal dimension (accurate near 0)."""
    Q1, Q2 = _orth_pair(U1, U2)
    if Q1.shape[1] != Q2.shape[1]:
        raise SpectraError(f"subspaces must have equal dimension, got {Q1.shape[1]} and {Q2.shape[1]}")
    return float(torch.linalg.matrix_norm(Q2 - Q1 @ (Q1.T @ Q2), ord=2))


def weyl_check(A: Tensor, A_pert: Tensor, *, rtol: float = 1e-6, atol: float = 1e-10) -> BoundCheck:
    """Weyl's inequality for singular values: max_i |σ_i(A + E) − σ_i(A)| ≤ ||E||_2, E = Ã − A."""
    A, A_pert = _pair(A, A_pert)
    s = torch.linalg.svdvals(A)
    t = torch.linalg.svdvals(A_pert)
    E_norm = float(torch.linalg.matrix_norm(A_pert - A, ord=2))
    diffs = (t - s).abs()
    measured = float(diffs.max())
    return BoundCheck(
        name="weyl",
        statement="max_i |sigma_i(A+E) - sigma_i(A)| <= ||E||_2",
        bound=E_norm,
        measured=measured,
        holds=_holds(measured, E_norm, rtol, atol),
        details={"abs_shift": diffs.cpu(), "E_norm2": E_norm},
    )


def wedin_check(A: Tensor, A_pert: Tensor, r: int, *, rtol: float = 1e-6, atol: float = 1e-10) -> BoundCheck:
    """Wedin sin Θ (spectral form) for the top-r singular subspaces of A and Ã = A + E.

    With δ = σ_r(Ã) − σ_{r+1}(A) (σ_{r+1} := 0 if r = min(N, p)) and δ > 0:
    measured = max(||sin Θ(U_r, Ũ_r)||_2, ||sin Θ(V_r, Ṽ_r)||_2),
    bound = max(||E Ṽ_r||_2, ||Eᵀ Ũ_r||_2) / δ  (residual form; ``details["coarse_bound"]`` is
    ||E||_2 / δ). If δ ≤ 0 the theorem says nothing: bound = ∞.
    """
    A, A_pert = _pair(A, A_pert)
    m = min(A.shape)
    if not isinstance(r, int) or not (1 <= r <= m):
        raise SpectraError(f"r must be an integer in [1, {m}], got {r!r}")
    U, s, Vh = torch.linalg.svd(A, full_matrices=False)
    Ut, t, Vth = torch.linalg.svd(A_pert, full_matrices=False)
    E = A_pert - A
    s_next = float(s[r]) if r < m else 0.0
    gap = float(t[r - 1]) - s_next
    sin_u = sin_theta(U[:, :r], Ut[:, :r])
    sin_v = sin_theta(Vh[:r].T, Vth[:r].T)
    measured = max(sin_u, sin_v)
    res = max(float(torch.linalg.matrix_norm(E @ Vth[:r].T, ord=2)), float(torch.linalg.matrix_norm(E.T @ Ut[:, :r], ord=2)))
    E_norm = float(torch.linalg.matrix_norm(E, ord=2))
    bound = res / gap if gap > 0 else float("inf")
    return BoundCheck(
        name="wedin",
        statement="max(||sin Theta(U_r,U~_r)||, ||sin Theta(V_r,V~_r)||) <= max(||E V~_r||, ||E^T U~_r||) / "
        "(sigma_r(A~) - sigma_{r+1}(A))",
        bound=bound,
        measured=measured,
        holds=_holds(measured, bound, rtol, atol),
        details={
            "r": r,
            "gap": gap,
            "sin_theta_left": sin_u,
            "sin_theta_right": sin_v,
            "residual_norm": res,
            "E_norm2": E_norm,
            "coarse_bound": E_norm / gap if gap > 0 else float("inf"),
        },
    )


def davis_kahan_check(G: Tensor, G_pert: Tensor, r: int, *, rtol: float = 1e-6, atol: float = 1e-10) -> BoundCheck:
    """Davis–Kahan sin Θ for the top-r eigenspaces of symmetric G and G̃ = G + H.

    With δ = λ_r(G) − λ_{r+1}(G̃) (λ_{r+1} := −∞ if r = N) and δ > 0:
    measured = ||sin Θ(U_r, Ũ_r)||_2, bound = ||H U_r||_2 / δ (``details["coarse_bound"]`` is
    ||H||_2 / δ). For Grams G = J Jᵀ the subspaces are the top-r left singular subspaces of J.
    """
    G, G_pert = _pair(G, G_pert)
    N = G.shape[0]
    if G.shape[1] != N:
        raise SpectraError(f"G must be square, got shape {tuple(G.shape)}")
    sym_err = float((G - G.T).abs().max()) + float((G_pert - G_pert.T).abs().max())
    scale = float(G.abs().max()) + float(G_pert.abs().max())
    if sym_err > 1e-6 * max(scale, 1e-30):
        raise SpectraError("G and G_pert must be symmetric")
    if not isinstance(r, int) or not (1 <= r <= N):
        raise SpectraError(f"r must be an integer in [1, {N}], got {r!r}")
    lam, U = torch.linalg.eigh(0.5 * (G + G.T))
    lt, Ut = torch.linalg.eigh(0.5 * (G_pert + G_pert.T))
    lam, U, lt, Ut = lam.flip(0), U.flip(1), lt.flip(0), Ut.flip(1)
    H = G_pert - G
    gap = float(lam[r - 1] - lt[r]) if r < N else float("inf")
    measured = sin_theta(U[:, :r], Ut[:, :r])
    res = float(torch.linalg.matrix_norm(H @ U[:, :r], ord=2))
    H_norm = float(torch.linalg.matrix_norm(H, ord=2))
    bound = res / gap if gap > 0 else float("inf")
    if r == N:
        bound = 0.0  # both subspaces are the whole space
    return BoundCheck(
        name="davis_kahan",
        statement="||sin Theta(U_r, U~_r)||_2 <= ||H U_r||_2 / (lambda_r(G) - lambda_{r+1}(G~))",
        bound=bound,
        measured=measured,
        holds=_holds(measured, bound, rtol, atol),
        details={"r": r, "gap": gap, "residual_norm": res, "H_norm2": H_norm,
                 "coarse_bound": (H_norm / gap if gap > 0 else float("inf")) if r < N else 0.0},
    )


def stacked_check(
    A: Tensor, A_aug: Tensor, *, rtol: float = 1e-6, atol: float = 1e-10
) -> BoundCheck:
    """Appending augmented copies: B = [A; Ã]. Checks σ_i(B) ≥ σ_i(A) for every i and the Weyl
    band |σ_i(B)² − 2σ_i(A)²| ≤ 2σ_1(A)||E||_2 + ||E||_2² (E = Ã − A).

    ``measured``/``bound`` refer to the band; ``details["monotone"]`` tells whether every
    σ_i(B) ≥ σ_i(A) (up to tolerance), and ``holds`` requires both. σ(A) is zero-padded to the
    length of σ(B) (rank(B) may exceed rank(A)). Relative growth σ_i(B)/σ_i(A) is in ``details``.
    """
    A, A_aug = _pair(A, A_aug)
    B = torch.cat([A, A_aug], dim=0)
    sB = torch.linalg.svdvals(B)
    sA = torch.linalg.svdvals(A)
    sA_pad = torch.zeros_like(sB)
    sA_pad[: sA.shape[0]] = sA
    E_norm = float(torch.linalg.matrix_norm(A_aug - A, ord=2))
    smax = float(sA[0])
    tol_mono = rtol * float(sB[0]) + atol
    monotone = bool((sB >= sA_pad - tol_mono).all())
    band = (sB**2 - 2 * sA_pad**2).abs()
    bound = 2 * smax * E_norm + E_norm**2
    measured = float(band.max())
    with torch.no_grad():
        growth = torch.where(sA_pad > 0, sB / sA_pad.clamp_min(1e-300), torch.full_like(sB, float("nan")))
    return BoundCheck(
        name="stacked",
        statement="sigma_i([A;A~]) >= sigma_i(A) and |sigma_i([A;A~])^2 - 2 sigma_i(A)^2| <= 2 sigma_1(A)||E|| + ||E||^2",
        bound=bound,
        measured=measured,
        holds=monotone and _holds(measured, bound, rtol, atol * max(1.0, smax**2)),
        details={"monotone": monotone, "min_margin": float((sB - sA_pad).min()), "growth": growth.cpu(),
                 "E_norm2": E_norm, "sigma_stacked": sB.cpu(), "sigma_clean": sA.cpu()},
    )


def shift_report_from_gram(G_joint: Tensor, r: int = 10, *, frac: float = 0.1) -> dict:
    """Everything above from the joint Gram of B = [A; Ã] alone (J never materialised).

    ``G_joint`` = B Bᵀ (2N × 2N) with blocks [[A Aᵀ, A Ãᵀ], [Ã Aᵀ, Ã Ãᵀ]] — e.g.
    ``gram_matrix(model, torch.cat([x, x_pert]))``. Since σ(M)² = λ(M Mᵀ):
    σ(A), σ(Ã), σ(B) from the diagonal blocks and the whole matrix, and
    ||E||_2² = λ_max((Ã − A)(Ã − A)ᵀ) = λ_max(ÃÃᵀ − ÃAᵀ − AÃᵀ + AAᵀ).
    Returns a dict with the three spectra (σ descending, length N or 2N), the relative shift
    Ã vs A and its :func:`shift_summary`, the top-r left-subspace principal angles, and the
    Weyl, Davis–Kahan (on the Grams A Aᵀ vs Ã Ãᵀ) and stacked checks as :class:`BoundCheck` s.
    """
    G_joint = _mat(G_joint, "G_joint")
    M = G_joint.shape[0]
    if G_joint.shape[1] != M or M % 2:
        raise SpectraError(f"G_joint must be square with an even size, got {tuple(G_joint.shape)}")
    N = M // 2
    if not isinstance(r, int) or not (1 <= r <= N):
        raise SpectraError(f"r must be an integer in [1, {N}], got {r!r}")
    G_joint = 0.5 * (G_joint + G_joint.T)
    G, C, Gt = G_joint[:N, :N], G_joint[N:, :N], G_joint[N:, N:]  # C = Ã Aᵀ

    def eig_desc(S: Tensor) -> tuple[Tensor, Tensor]:
        lam, U = torch.linalg.eigh(0.5 * (S + S.T))
        return lam.flip(0), U.flip(1)

    lam, U = eig_desc(G)
    lam_t, U_t = eig_desc(Gt)
    lam_b = torch.linalg.eigvalsh(G_joint).flip(0)
    s, s_t, s_b = lam.clamp_min(0).sqrt(), lam_t.clamp_min(0).sqrt(), lam_b.clamp_min(0).sqrt()
    EE = Gt - C - C.T + G  # (Ã − A)(Ã − A)ᵀ
    E_norm = float(torch.linalg.eigvalsh(0.5 * (EE + EE.T))[-1].clamp_min(0).sqrt())
    diffs = (s_t - s).abs()
    weyl = BoundCheck(
        name="weyl", statement="max_i |sigma_i(A+E) - sigma_i(A)| <= ||E||_2", bound=E_norm,
        measured=float(diffs.max()), holds=_holds(float(diffs.max()), E_norm, 1e-6, 1e-8 * max(1.0, float(s[0]))),
        details={"E_norm2": E_norm},
    )
    dk = davis_kahan_check(G, Gt, r)
    s_pad = torch.zeros_like(s_b)
    s_pad[:N] = s
    band = (s_b**2 - 2 * s_pad**2).abs()
    band_bound = 2 * float(s[0]) * E_norm + E_norm**2
    tol = 1e-6 * float(s_b[0]) + 1e-8
    monotone = bool((s_b >= s_pad - tol).all())
    stacked = BoundCheck(
        name="stacked",
        statement="sigma_i([A;A~]) >= sigma_i(A) and |sigma_i([A;A~])^2 - 2 sigma_i(A)^2| <= 2 sigma_1(A)||E|| + ||E||^2",
        bound=band_bound, measured=float(band.max()),
        holds=monotone and _holds(float(band.max()), band_bound, 1e-6, 1e-8 * max(1.0, float(s[0]) ** 2)),
        details={"monotone": monotone, "min_margin": float((s_b - s_pad).min()), "E_norm2": E_norm},
    )
    return {
        "sigma_clean": s,
        "sigma_perturbed": s_t,
        "sigma_stacked": s_b,
        "relative_shift": relative_shift(s, s_t),
        "relative_growth_stacked": relative_shift(s, s_b[:N]),
        "summary": shift_summary(s, s_t, frac=frac),
        "summary_stacked": shift_summary(s, s_b[:N], frac=frac),
        "principal_angles": principal_angles(U[:, :r], U_t[:, :r]),
        "checks": {"weyl": weyl, "davis_kahan": dk, "stacked": stacked},
    }
