"""The theory figures (1–4) on the embedded digits data.

All four share one setting, built by :func:`theory_setting`: a small ReLU MLP trained for a few
epochs on digits (pixels in [0, 1], no normalisation, so an additive perturbation x → x + δ is
measured on the pixel scale), and a stratified sample of training images. Jacobians are taken
with respect to all parameters, in float64, through :mod:`spectra`.

"Appending" is the paper's augmentation protocol (docs/paper-notes.md §2, §5.1): the augmented Jacobian is the
stacked matrix [J; J̃]. To separate the effect of the perturbation from the trivial √2 of having
twice the rows, spectra are compared with the clean data appended to itself, [J; J] (σ = √2·σ(J)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

import spectra
from coreaug.augment import pixel_augmentation
from coreaug.data import load_data
from coreaug.data.base import stratified_indices
from coreaug.models import build_model
from coreaug.proxies import proxies_from_outputs
from coreaug.select import facility_location, max_loss_subset, random_subset

#: Strong augmentation used for the augmented data in figures 3 and 4.
DEFAULT_AUGMENTATION = "trivialaugment"


@dataclass
class TheorySetting:
    """A trained model and a sample of clean images with their perturbed versions."""

    model: nn.Module
    x: torch.Tensor  # (n, 1, 8, 8) float in [0, 1]
    y: torch.Tensor  # (n,)
    perturbed: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> x + δ
    delta_l2: dict[str, float] = field(default_factory=dict)  # name -> mean ‖δ‖₂
    test_accuracy: float = float("nan")
    seed: int = 0
    _jacobians: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def jacobian(self, name: str | None = None) -> torch.Tensor:
        """True-class-logit Jacobian (n × p, float64) of the clean (``None``) or a perturbed sample, cached."""
        key = name or "clean"
        if key not in self._jacobians:
            x = self.x if name is None else self.perturbed[name]
            self._jacobians[key] = _J(self.model, x, self.y)
        return self._jacobians[key]


def _train_mlp(x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor, *, epochs: int, seed: int):
    torch.manual_seed(seed)
    model = build_model("mlp", 10, in_channels=1, image_size=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=gen)
        for start in range(0, x.shape[0], 64):
            b = perm[start : start + 64]
            loss = F.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(x_test).argmax(1) == y_test).float().mean())
    return model, acc


def perturbation_suite(x: torch.Tensor, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Bounded random perturbations (L2 sphere, three radii) and real augmentations of ``x``."""
    out: dict[str, torch.Tensor] = {}
    for eps in (0.5, 1.0, 2.0):
        delta = spectra.random_perturbation(x, eps, "l2", on_boundary=True, seed=seed)
        out[f"random L2, eps={eps:g}"] = x + delta
    for name in ("trivialaugment", "autoaugment", "randomerasing"):
        aug = pixel_augmentation(name, 8)
        out[name] = spectra.augmentation_deltas(x, aug, per_example=False, seed=seed).x_aug
    return out


def theory_setting(*, n: int = 300, epochs: int = 3, seed: int = 0) -> TheorySetting:
    """Train the MLP on digits (a few epochs: partly trained) and sample ``n`` training images."""
    bundle = load_data("digits")
    x_tr = bundle.train.images.float() / 255.0
    x_te = bundle.test.images.float() / 255.0
    model, acc = _train_mlp(x_tr, bundle.train.targets, x_te, bundle.test.targets, epochs=epochs, seed=seed)
    idx = stratified_indices(bundle.train.targets, n, seed=seed)
    x, y = x_tr[idx], bundle.train.targets[idx]
    perturbed = perturbation_suite(x, seed=seed)
    delta_l2 = {k: float((v - x).flatten(1).norm(dim=1).mean()) for k, v in perturbed.items()}
    return TheorySetting(model=model, x=x, y=y, perturbed=perturbed, delta_l2=delta_l2, test_accuracy=acc, seed=seed)


def _J(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """Jacobian of the true-class logit (y given: n × p) or of all logits (y None: n·k × p), float64."""
    return spectra.jacobian(model, x, targets=y, dtype=torch.float64, chunk_size=128)


def _row_space_basis(*mats: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis Q (p × m) of the joint row space of ``mats`` (all with p columns).

    For any A whose rows lie in that space, A Q has the same singular values, the same left singular
    vectors, and right singular vectors V = Q V', so spectra, principal angles and Weyl/Wedin checks
    can run on the small (rows × m) matrices instead of (rows × p): exact, and much faster when p ≫ rows.
    """
    return torch.linalg.qr(torch.cat(mats).T).Q


def _sv(A: torch.Tensor) -> torch.Tensor:
    """Singular values, descending (through the Gram matrix when A is wide: much faster here)."""
    return spectra.exact_svd(A, compute_vectors=False).S


# --------------------------------------------------------------------------- figure 1


def singular_value_shifts(setting: TheorySetting) -> tuple[pd.DataFrame, dict]:
    """Per-index singular values, clean vs appended-augmented, for every perturbation.

    Columns: perturbation, index, sigma_clean (σ_i(J)), sigma_dup (σ_i([J;J]) = √2σ_i(J)),
    sigma_appended (σ_i([J;J̃])), rel_increase (σ_i([J;J̃])/σ_i([J;J]) − 1), sigma_inplace (σ_i(J̃)),
    rel_change_inplace (σ_i(J̃)/σ_i(J) − 1), delta_l2.
    """
    J_full = setting.jacobian()
    s = _sv(J_full)
    s_dup = math.sqrt(2.0) * s
    frames, summary = [], {}
    for name, xp in setting.perturbed.items():
        Jp_full = setting.jacobian(name)
        Q = _row_space_basis(J_full, Jp_full)
        J, Jp = J_full @ Q, Jp_full @ Q
        s_app = _sv(torch.cat([J, Jp]))[: s.numel()]
        s_in = _sv(Jp)
        rel = spectra.relative_shift(s_dup, s_app)
        frames.append(pd.DataFrame({
            "perturbation": name,
            "index": np.arange(1, s.numel() + 1),
            "sigma_clean": s.numpy(),
            "sigma_dup": s_dup.numpy(),
            "sigma_appended": s_app.numpy(),
            "rel_increase": rel.numpy(),
            "sigma_inplace": s_in.numpy(),
            "rel_change_inplace": spectra.relative_shift(s, s_in).numpy(),
            "delta_l2": setting.delta_l2[name],
        }))
        summary[name] = {
            "delta_l2_mean": setting.delta_l2[name],
            "appended": spectra.shift_summary(s_dup, s_app, frac=0.1),
            "inplace": spectra.shift_summary(s, s_in, frac=0.1),
            "stacked_bound": _bound_summary(spectra.stacked_check(J, Jp)),
        }
    return pd.concat(frames, ignore_index=True), summary


# --------------------------------------------------------------------------- figure 2


def subspace_rotation(setting: TheorySetting, *, max_rank: int = 40, wedin_rank: int = 10) -> tuple[pd.DataFrame, dict]:
    """Largest principal angle between the top-r right singular subspaces of [J;J] and [J;J̃].

    Right singular vectors live in parameter space, so clean and appended Jacobians are directly
    comparable. Also checks Wedin's sin Θ bound at r = ``wedin_rank`` for each perturbation.
    """
    J_full = setting.jacobian()
    rows, summary = [], {}
    for name in setting.perturbed:
        Jp_full = setting.jacobian(name)
        Q = _row_space_basis(J_full, Jp_full)  # angles are unchanged by the common isometry Q
        J, Jp = J_full @ Q, Jp_full @ Q
        V = spectra.exact_svd(J).V
        A = torch.cat([J, J])
        Ap = torch.cat([J, Jp])
        Vp = spectra.exact_svd(Ap).V
        for r in range(1, min(max_rank, V.shape[1]) + 1):
            ang = spectra.principal_angles(V[:, :r], Vp[:, :r])
            rows.append({"perturbation": name, "rank": r, "max_angle_deg": float(torch.rad2deg(ang.max())),
                         "delta_l2": setting.delta_l2[name]})
        check = spectra.wedin_check(A, Ap, wedin_rank)
        summary[name] = {"wedin": _bound_summary(check), "delta_l2_mean": setting.delta_l2[name]}
    return pd.DataFrame(rows), summary


def _bound_summary(check: spectra.BoundCheck) -> dict:
    """A bound check as JSON: its statement, bound, measured value, verdict and scalar details."""
    d = check.to_dict()
    d["details"] = {k: v for k, v in d["details"].items() if not isinstance(v, list)}
    return d


# --------------------------------------------------------------------------- figures 3 and 4

Selector = Callable[[float, int], tuple[torch.Tensor, torch.Tensor]]


def _selectors(setting: TheorySetting, loss: str = "ce") -> dict[str, Selector]:
    """Subset selectors on the *clean* data (proxies and losses from one no-grad pass).

    ``loss="ce"``: the paper's proxy softmax(z) − onehot(y) and CE losses; ``loss="mse"``: the
    squared-loss analogue z − onehot(y) and ½‖z − onehot(y)‖², matching the linearised dynamics.
    """
    with torch.no_grad():
        logits = setting.model(setting.x)
    y = setting.y
    if loss == "ce":
        feats, losses = proxies_from_outputs(logits, y, kind="bias")
    else:
        feats = spectra.residuals(logits, y, kind="mse")
        losses = 0.5 * (feats**2).sum(dim=1)

    def coreset(frac: float, seed: int):
        sel = facility_location(feats, y, frac, num_classes=10, seed=seed)
        return sel.indices, sel.weights

    def coreset_unweighted(frac: float, seed: int):
        sel = facility_location(feats, y, frac, num_classes=10, seed=seed)
        return sel.indices, torch.ones_like(sel.weights)

    def random(frac: float, seed: int):
        sel = random_subset(y, frac, num_classes=10, seed=seed)
        return sel.indices, sel.weights

    def maxloss(frac: float, seed: int):
        sel = max_loss_subset(losses, y, frac, num_classes=10)
        return sel.indices, sel.weights

    return {"coreset": coreset, "coreset (unweighted)": coreset_unweighted, "random": random, "max-loss": maxloss}


#: The data whose gradient a subset must match in figures 3 and 4: clean, a bounded random
#: perturbation, and a real strong augmentation.
ALIGNMENT_SETTINGS: tuple[str, ...] = ("none", "random L2, eps=1", DEFAULT_AUGMENTATION)


def _augmented(setting: TheorySetting, augmentation: str) -> torch.Tensor:
    """``setting.x`` under ``augmentation``: ``"none"``, ``"random L2, eps=E"`` or a strong-augmentation name."""
    if augmentation == "none":
        return setting.x
    if augmentation.startswith("random L2, eps="):
        eps = float(augmentation.split("=")[1])
        return setting.x + spectra.random_perturbation(setting.x, eps, "l2", on_boundary=True, seed=setting.seed + 1)
    return spectra.augmentation_deltas(
        setting.x, pixel_augmentation(augmentation, 8), per_example=False, seed=setting.seed + 1
    ).x_aug


def alignment_vs_size(
    setting: TheorySetting,
    *,
    fractions: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5),
    random_seeds: int = 5,
    augmentations: tuple[str, ...] = ALIGNMENT_SETTINGS,
) -> pd.DataFrame:
    """ξ(S, γ) between the augmented full data's mean gradient J̃ᵀr̃/n and each augmented subset's.

    J̃ (all logits) and r̃ = softmax − onehot are taken on the augmented images; subsets are chosen
    on the clean images, as in training. ``scale="mean"`` compares mean gradients (the paper's code
    normalises weights to mean 1 and averages the weighted loss).
    """
    selectors = _selectors(setting)
    rows = []
    for augmentation in augmentations:
        x_aug = _augmented(setting, augmentation)
        J = _J(setting.model, x_aug, None)
        with torch.no_grad():
            r = spectra.residuals(setting.model(x_aug).double(), setting.y, kind="ce")
        for name, pick in selectors.items():
            seeds = range(random_seeds) if name == "random" else range(1)
            for frac in fractions:
                subsets = [pick(frac, s) for s in seeds]
                for res, seed in zip(spectra.alignment_errors(J, r, {name: subsets}, scale="mean"), seeds):
                    rows.append({"augmentation": augmentation, "selector": name, "fraction": frac, "seed": seed,
                                 "size": res["size"], "xi": res["xi"], "xi_relative": res["xi_relative"]})
    return pd.DataFrame(rows)


def residual_decay(
    setting: TheorySetting,
    *,
    fraction: float = 0.1,
    steps: int = 300,
    n: int = 100,
    augmentations: tuple[str, ...] = ALIGNMENT_SETTINGS,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Linearised residual dynamics r_{t+1} = r_t − η G[:, S] diag(γ) r_t[S] (squared loss, all logits).

    For each entry of ``augmentations``, G = J̃ J̃ᵀ on that version of the first ``n`` examples; the
    step is driven by the full data or by a coreset / random / max-loss subset of ``fraction·n``
    examples chosen on the clean data (squared-loss proxies z − onehot(y), to match the dynamics). η = 1/λ_max(G/n), so the full-data iteration contracts every
    direction. Returns (loss curves, remaining residual |u_iᵀ r_T| / |u_iᵀ r_0| per singular
    direction, a summary).
    """
    sub = TheorySetting(model=setting.model, x=setting.x[:n], y=setting.y[:n], seed=setting.seed)
    runs: dict[str, tuple[torch.Tensor, torch.Tensor] | None] = {"full data": None}
    for name, pick in _selectors(sub, loss="mse").items():
        if name != "coreset (unweighted)":
            runs[name] = pick(fraction, 0)
    curves, directions = [], []
    summary: dict = {"n": n, "fraction": fraction, "steps": steps}
    for augmentation in augmentations:
        x_aug = _augmented(sub, augmentation)
        J = _J(sub.model, x_aug, None)
        G = J @ J.T
        with torch.no_grad():
            r0 = spectra.residuals(sub.model(x_aug).double(), sub.y, kind="mse")
        eig = spectra.gram_eigh(G)  # one eigendecomposition serves η and every run below
        eta = 1.0 / float(eig[0][0] / n)
        summary[augmentation] = {"eta": eta}
        for name, subset in runs.items():
            dyn = spectra.residual_dynamics(G, r0, eta, steps, subset=subset, scale="mean", eig=eig)
            curves.append(pd.DataFrame({"augmentation": augmentation, "run": name, "step": np.arange(steps + 1),
                                        "loss": (dyn.loss / n).numpy()}))
            p0, pT = dyn.projections[0].abs(), dyn.projections[-1].abs()
            idx = torch.nonzero(p0 > 1e-8 * p0.max()).flatten()
            directions.append(pd.DataFrame({
                "augmentation": augmentation,
                "run": name,
                "direction": (idx + 1).numpy(),
                "sigma": dyn.sigma[idx].numpy(),
                "remaining": (pT[idx] / p0[idx]).numpy(),
            }))
            summary[augmentation][name] = {"initial_loss": float(dyn.loss[0] / n), "final_loss": float(dyn.loss[-1] / n)}
    return pd.concat(curves, ignore_index=True), pd.concat(directions, ignore_index=True), summary
