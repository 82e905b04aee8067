"""Spectral diagnostics during training: the paper's Jacobian quantities on a fixed probe set, every K epochs.

With ``diagnostics_every = K > 0`` the training loop calls :meth:`TrainingDiagnostics.run` on the
model after epochs 0 (initialisation), K, 2K, … and after the last epoch. Each call measures, on a
**probe set** — ``diagnostics_probe`` (N) training examples drawn once per run, class-stratified with
:func:`coreaug.data.base.stratified_indices` and a seed derived from the run's seed, under the
test-time transform — and on one **strong-augmented copy** of each probe example (the run's
``views["strong"]``, i.e. weak + strong augmentation as appended in training, also drawn once per
run with a dedicated seed):

* **spectrum** of the probe Jacobian J (N × p) of the true-class logit, σ_1 ≥ … ≥ σ_N: top-5 and
  bottom-5 singular values, numerical rank, condition number σ_1/σ_rank, entropy effective rank;
* **shift under augmentation** (figure 1's definition): σ_i([J; J̃]) / σ_i([J; J]) − 1, averaged
  over the bottom and top 10% of the (numerically non-zero) spectrum, where J̃ is the Jacobian on the
  augmented copies and σ([J; J]) = √2·σ(J) removes the trivial gain of having twice the rows;
* **rotation** (figure 2): the largest principal angle between the top-r right singular subspaces of
  [J; J] and [J; J̃] (r = ``SUBSPACE_RANK`` = 10, capped at the numerical rank);
* **alignment error** (figure 3's quantity, ``spectra.alignment_errors`` with ``scale="mean"``):
  ξ(S, γ) / ‖J̃ᵀr̃/N‖ = ‖J̃ᵀr̃/N − J̃_Sᵀ diag(γ) r̃_S / Σγ‖ / ‖J̃ᵀr̃/N‖ with J̃ the Jacobian of all
  logits and r̃ = softmax − onehot, on the clean probe and on its augmented copies. **Definition of
  "the run's subset restricted to the probe"**: the run's own selector (same ``selector``,
  ``fraction``, ``proxy`` and ``per_class`` as the run, weights as in training: the run's own
  selection step, :meth:`coreaug.api.AugmentedCoreset.select` with the run's coreset settings) is re-run on the
  clean probe with the
  *current* model, so (S, γ) is what the run would select if the probe were its training set. (Intersecting the run's training-set subset with the probe was rejected:
  its γ are cluster sizes over the whole class, so on ~N·fraction probe points ξ would mostly
  measure sampling noise, and there is no subset at epoch 0.) The baseline is a random subset of
  the probe with the same fraction and per-class budgets (unit weights). S is chosen on the clean
  probe and kept for the augmented copies, as in training. Empty for runs without a subset.

**Parameters** (``diagnostics_params``): ``"last"`` (default) differentiates the classifier
(``coreaug.models.last_linear``) only. Its Jacobian is that of the classifier evaluated at the
penultimate embeddings, so one no-grad forward pass over the 2N probe images is all the network
work; everything else is N×N linear algebra. This keeps the default overhead on ``digits-quick``
well under 15% of its training time (``benchmarks/bench_diagnostics.py``); it is also the layer the
selection proxies stand for (PAPER.md §3.2). ``"all"`` differentiates every parameter (blockwise
Gram through ``spectra.gram_matrix``; far more expensive).

Everything goes **through the Gram matrix** G = [J; J̃][J; J̃]ᵀ (2N × 2N, float64,
``spectra.gram_matrix``): σ from ``spectra.svd_from_gram``; right singular subspaces are compared in
the coordinates of [J; J̃]'s row space, so no p-dimensional vector is ever formed.

Files in the run folder (rewritten atomically after every diagnostic): ``diagnostics.csv`` (one row
per diagnostic epoch, the scalar columns :data:`CSV_FIELDS`) and ``diagnostics.jsonl`` (the same plus
the full spectra, relative shifts, principal angles, absolute ξ and the probe subsets). Diagnostics
run inside a saved-and-restored RNG state, so they never change the training run; on ``--resume``
the rows up to the checkpoint's epoch are kept and later ones recomputed, giving the same rows as an
uninterrupted run on CPU.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

import spectra
from coreaug.data.base import TensorDataset, stratified_indices
from coreaug.device import resolve_eval_batch_size
from coreaug.distributed import DistContext
from coreaug.errors import ConfigError
from coreaug.io import csv_text, dumps_json, strict_json_value, write_text_atomic
from coreaug.models import last_linear
from coreaug.runfolder import DIAGNOSTICS_CSV, DIAGNOSTICS_JSONL
from coreaug.runtime import Timer, derive_seed, seed_everything
from coreaug.select import select
from coreaug.train.checkpoint import rng_state, set_rng_state
from spectra.jacobian import eval_mode

__all__ = [
    "CSV_FIELDS", "DIAGNOSTICS_CSV", "DIAGNOSTICS_JSONL", "PARAM_MODES", "Probe", "TrainingDiagnostics",
    "draw_probe", "probe_diagnostics", "read_diagnostics", "spectrum_from_gram",
]

#: Which parameters the Jacobian is taken with respect to.
PARAM_MODES: tuple[str, ...] = ("last", "all")
TOP_K = 5  #: singular values logged from each end of the spectrum
SUBSPACE_RANK = 10  #: r of the top-r right singular subspaces compared (figure 2's r at the class gap)
SHIFT_FRAC = 0.1  #: bottom/top fraction of the spectrum averaged for the shift (figure 1)

CSV_FIELDS: tuple[str, ...] = (
    "epoch", "probe_size", "num_params",
    *(f"sv_top{i}" for i in range(1, TOP_K + 1)), *(f"sv_bottom{i}" for i in range(1, TOP_K + 1)),
    "rank", "cond", "eff_rank", "rank_appended", "cond_appended", "eff_rank_appended",
    "shift_bottom10", "shift_top10", "shift_ratio", "angle_rank", "angle_max_deg",
    "subset_size", "xi_subset_clean", "xi_random_clean", "xi_subset_aug", "xi_random_aug", "time",
)

# derive_seed purposes (the training loop uses 0–3, label noise 7)
_SEED_PROBE, _SEED_AUG, _SEED_RANDOM = 101, 102, 104


# ----------------------------------------------------------------------------------------------
# the probe set
# ----------------------------------------------------------------------------------------------


@dataclass
class Probe:
    """The fixed probe: training-set ``indices`` (N,), clean images ``x``, labels ``y`` and the
    strong-augmented copies ``x_aug`` (``None`` when the run has no strong augmentation)."""

    indices: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    x_aug: torch.Tensor | None


class _isolated_rng:
    """Run a block under a fixed seed and restore every global RNG state (torch, CUDA, numpy, random)."""

    def __init__(self, seed: int | None = None):
        self.seed = seed

    def __enter__(self):
        self.state = rng_state()
        if self.seed is not None:
            seed_everything(self.seed)
        return self

    def __exit__(self, *exc):
        set_rng_state(self.state)
        return False


def draw_probe(train_view, strong_view, n: int, *, seed: int) -> Probe:
    """Draw the probe: ``n`` stratified training indices (seeded) and their images from ``train_view``
    (test-time transform) and, if ``strong_view`` is given, one strong-augmented copy each.

    Global RNG states are left unchanged (the augmentations draw under their own seed).
    """
    targets = torch.as_tensor(train_view.targets, dtype=torch.long)
    if n > targets.numel():
        raise ConfigError(f"diagnostics probe size {n} exceeds the {targets.numel()} training examples; "
                          f"lower --diagnostics-probe")
    idx = stratified_indices(targets, n, seed=derive_seed(seed, _SEED_PROBE) % 2**63)

    def stack(view) -> torch.Tensor:
        return torch.stack([torch.as_tensor(view[int(i)][0]) for i in idx]).float()

    x = stack(train_view)
    x_aug = None
    if strong_view is not None:
        with _isolated_rng(derive_seed(seed, _SEED_AUG)):
            x_aug = stack(strong_view)
    return Probe(indices=idx, x=x, y=targets[idx].clone(), x_aug=x_aug)


# ----------------------------------------------------------------------------------------------
# one diagnostic
# ----------------------------------------------------------------------------------------------


def _forward(model: nn.Module, x: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode, no-grad logits and penultimate embeddings (input of the classifier) of ``x``."""
    fc = last_linear(model)
    captured: list[torch.Tensor] = []
    handle = fc.register_forward_hook(lambda _m, inp, _out: captured.append(inp[0].detach()))
    device = next(model.parameters()).device
    zs = []
    try:
        with torch.no_grad(), eval_mode(model):
            for s in range(0, x.shape[0], batch_size):
                zs.append(model(x[s : s + batch_size].to(device)).detach())
    finally:
        handle.remove()
    return torch.cat(zs).float(), torch.cat(captured).flatten(1)


def _rank(s: torch.Tensor, rows: int) -> int:
    """Numerical rank of Gram-derived σ: σ_i > sqrt(rows·eps)·σ_1 (their accuracy; ``svd_from_gram``'s cut)."""
    return spectra.numerical_rank(s, rtol=math.sqrt(rows * torch.finfo(s.dtype).eps))


def _spectrum_stats(s: torch.Tensor, rows: int) -> dict[str, Any]:
    rank = _rank(s, rows)
    return {
        "rank": rank,
        "cond": spectra.condition_number(s, rank=rank) if rank else float("inf"),
        "eff_rank": spectra.effective_rank(s) if float(s.max()) > 0 else None,
    }


def _svd_from_gram(G: torch.Tensor, groups: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(σ descending, U) of J from G = J Jᵀ by ``spectra.svd_from_gram``, one diagonal block at a time
    when G is exactly block-diagonal by ``groups`` (e.g. the classifier's true-class Jacobian, whose
    rows for different classes touch disjoint weights: G_ij = 0 whenever y_i ≠ y_j). Exact: the
    eigenpairs of a block-diagonal matrix are those of its blocks; much cheaper than one big eigh."""
    if groups is not None:
        different = groups[:, None] != groups[None, :]
        if bool((G[different] == 0).all()):
            sig, cols = [], []
            U = torch.zeros_like(G)
            for g in torch.unique(groups):
                members = torch.nonzero(groups == g).flatten()
                res = spectra.svd_from_gram(G[members][:, members])
                sig.append(res.S)
                cols.append((members, res.U))
            order = torch.argsort(torch.cat(sig), descending=True, stable=True)
            start = 0
            for members, Ub in cols:  # block columns, placed then permuted into descending order
                U[members, start : start + Ub.shape[1]] = Ub
                start += Ub.shape[1]
            return torch.cat(sig)[order], U[:, order]
    res = spectra.svd_from_gram(G)
    return res.S, res.U


def spectrum_from_gram(G_joint: torch.Tensor | None, G: torch.Tensor, *, r: int = SUBSPACE_RANK,
                       groups: torch.Tensor | None = None) -> dict[str, Any]:
    """Spectrum of J, and (given the joint Gram of B = [J; J̃]) figure 1's shift and figure 2's angle.

    ``G`` = J Jᵀ (N × N); ``G_joint`` = B Bᵀ (2N × 2N, ``G`` its top-left block) or ``None``.
    Right singular vectors are V = Jᵀ U Σ⁻¹ and V_B = Bᵀ U_B Σ_B⁻¹; since the rows of J lie in B's row
    space, V's top-r columns have coordinates V_Bᵀ V = Σ_B⁻¹ U_Bᵀ (B Jᵀ) U Σ⁻¹ in the orthonormal basis
    V_B, where B Jᵀ = G_joint[:, :N]; V_B's own top-r columns are the first r unit vectors there.
    ``groups`` (N,): example groups (classes) along which the Grams may be block-diagonal (exploited).
    """
    n = G.shape[0]
    s, U = _svd_from_gram(G, groups)
    out: dict[str, Any] = {"sigma": s, **_spectrum_stats(s, n)}
    if G_joint is None:
        return out
    sB, UB = _svd_from_gram(G_joint, None if groups is None else torch.cat([groups, groups]))
    statsB = _spectrum_stats(sB, 2 * n)
    out.update({"sigma_appended": sB, "rank_appended": statsB["rank"], "cond_appended": statsB["cond"],
                "eff_rank_appended": statsB["eff_rank"]})
    # figure 1: σ_i([J; J̃]) vs σ_i([J; J]) = √2 σ_i(J), on the numerically non-zero part of σ(J)
    k = out["rank"]
    s_dup = math.sqrt(2.0) * s[:k]
    s_app = sB[:k]
    out["relative_increase"] = spectra.relative_shift(s_dup, s_app)
    summ = spectra.shift_summary(s_dup, s_app, frac=SHIFT_FRAC)
    out.update({"shift_bottom10": summ["bottom_rel_change"], "shift_top10": summ["top_rel_change"],
                "shift_ratio": summ["ratio_bottom_over_top"]})
    # figure 2: largest principal angle between top-r right singular subspaces of [J; J] and [J; J̃]
    r = min(r, k, statsB["rank"])
    kB = statsB["rank"]
    coords = (UB[:, :kB].T @ G_joint[:, :n] @ U[:, :r]) / (sB[:kB, None] * s[None, :r])
    eye = torch.eye(kB, r, dtype=coords.dtype, device=coords.device)
    angles = spectra.principal_angles(coords, eye)
    out.update({"angle_rank": r, "principal_angles_deg": torch.rad2deg(angles),
                "angle_max_deg": float(torch.rad2deg(angles.max()))})
    return out


def _head(model: nn.Module, x: torch.Tensor, logits_h: tuple[torch.Tensor, torch.Tensor], params: str):
    """(module, inputs) whose parameter Jacobian is the probe Jacobian for ``params``."""
    if params == "last":
        return last_linear(model), logits_h[1]
    return model, x


_HEAD_PARAMS = "all"  # all parameters of the head (the classifier for "last", the whole model for "all")


def _spectrum_columns(model: nn.Module, probe: Probe, clean, aug, params: str, batch_size: int,
                      gram_block_bytes: int) -> dict[str, Any]:
    """Spectrum, shift and rotation from the joint Gram of [J; J̃] (true-class logit): the ``sv_*``,
    rank/cond/eff_rank, shift and angle columns and the ``sigma*`` arrays."""
    n = probe.y.numel()
    device = next(model.parameters()).device
    y = probe.y.to(device)
    gram_kw = dict(dtype=torch.float64, max_block_bytes=gram_block_bytes, chunk_size=batch_size)
    mod, inp = _head(model, probe.x.to(device), clean, params)
    if aug is not None:
        _, inp_aug = _head(model, probe.x_aug.to(device), aug, params)
        G_joint = spectra.gram_matrix(mod, torch.cat([inp, inp_aug]), params=_HEAD_PARAMS, targets=torch.cat([y, y]),
                                      **gram_kw)
        spec = spectrum_from_gram(G_joint, G_joint[:n, :n], groups=probe.y.to(G_joint.device))
    else:
        G = spectra.gram_matrix(mod, inp, params=_HEAD_PARAMS, targets=y, **gram_kw)
        spec = spectrum_from_gram(None, G, groups=probe.y.to(G.device))
    s = spec["sigma"]
    k = min(TOP_K, n)
    out: dict[str, Any] = {"num_params": sum(p.numel() for p in mod.parameters())}
    out.update({f"sv_top{i + 1}": float(s[i]) for i in range(k)})
    out.update({f"sv_bottom{i + 1}": float(s[n - 1 - i]) for i in range(k)})
    out.update({key: spec.get(key) for key in ("rank", "cond", "eff_rank", "rank_appended", "cond_appended",
                                              "eff_rank_appended", "shift_bottom10", "shift_top10", "shift_ratio",
                                              "angle_rank", "angle_max_deg")})
    out["sigma"] = s.cpu()
    for key in ("sigma_appended", "relative_increase", "principal_angles_deg"):
        out[key] = spec[key].cpu() if key in spec else None
    return out


def _alignment_columns(model: nn.Module, probe: Probe, clean, aug, params: str, batch_size: int, select_fn,
                       random_fn) -> dict[str, Any]:
    """Alignment error ξ of the run's selector on the probe vs a random subset (all logits, CE residual);
    the ξ columns stay ``None`` without ``select_fn``."""
    out: dict[str, Any] = {"subset_size": None, "xi_subset_clean": None, "xi_random_clean": None,
                           "xi_subset_aug": None, "xi_random_aug": None}
    if select_fn is None:
        return out
    device = next(model.parameters()).device
    y = probe.y.to(device)
    idx, w = select_fn(clean[0], clean[1], probe.y)
    subsets = {"subset": (idx.cpu().long(), w.cpu().double())}
    out.update({"subset_size": int(idx.numel()), "subset_indices": idx.cpu().long(), "subset_weights": w.cpu().double()})
    if random_fn is not None:
        ridx, rw = random_fn(probe.y)
        subsets["random"] = (ridx.cpu().long(), rw.cpu().double())
        out.update({"random_size": int(ridx.numel()), "random_indices": ridx.cpu().long()})
    for tag, (logits_h, xs) in {"clean": (clean, probe.x), "aug": (aug, probe.x_aug)}.items():
        if logits_h is None:
            continue
        mod, inp = _head(model, xs.to(device), logits_h, params)
        op = spectra.JacobianOperator(mod, inp, params=_HEAD_PARAMS, dtype=torch.float64, chunk_size=batch_size)
        resid = spectra.residuals(logits_h[0].double(), y, kind="ce")
        rows = {r["name"]: r for r in spectra.alignment_errors(op, resid, subsets, scale="mean")}
        for name in subsets:
            out[f"xi_{name}_{tag}"] = rows[name]["xi_relative"]
            out[f"xi_abs_{name}_{tag}"] = rows[name]["xi"]
    return out


def probe_diagnostics(
    model: nn.Module,
    probe: Probe,
    *,
    params: str = "last",
    select_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    random_fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    batch_size: int = 512,
    gram_block_bytes: int = 256 * 2**20,
) -> dict[str, Any]:
    """All diagnostics of ``model`` on ``probe`` (see the module docstring), as one dict.

    ``select_fn(logits, embedding, y) -> (indices, weights)`` picks the weighted subset on the clean
    probe (positions 0..N−1), ``random_fn(y)`` the baseline (optional); ``select_fn=None``: no ξ
    (full-data runs).
    Tensors in the result are CPU float64. The model is left unchanged (eval mode is restored).
    """
    if params not in PARAM_MODES:
        raise ConfigError(f"unknown diagnostics params {params!r}; choose one of: {', '.join(PARAM_MODES)}")
    n = probe.y.numel()
    clean = _forward(model, probe.x, batch_size)
    aug = _forward(model, probe.x_aug, batch_size) if probe.x_aug is not None else None
    if not all(bool(torch.isfinite(t).all()) for pair in (clean, aug) if pair is not None for t in pair):
        # a diverged model (training with allow_nonfinite): nothing to measure, the row stays empty
        return {"probe_size": n, "params": params, "error": "the model's outputs on the probe are not finite"}
    spectrum = _spectrum_columns(model, probe, clean, aug, params, batch_size, gram_block_bytes)
    out: dict[str, Any] = {"probe_size": n, "num_params": spectrum.pop("num_params"), "params": params, **spectrum}
    out.update(_alignment_columns(model, probe, clean, aug, params, batch_size, select_fn, random_fn))
    return out


# ----------------------------------------------------------------------------------------------
# the run-level driver and the files
# ----------------------------------------------------------------------------------------------


def read_diagnostics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``run_dir/diagnostics.jsonl`` (empty list when absent).

    Raises :class:`~coreaug.errors.CheckpointError` naming the file and line when a line is not JSON, not an
    object, or has no integer ``epoch`` (a damaged file would otherwise fail the resume with a traceback).
    """
    from coreaug.errors import CheckpointError

    path = Path(run_dir) / DIAGNOSTICS_JSONL
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise CheckpointError(f"{path} line {number} is not valid JSON ({exc.msg}); "
                                  "delete the file to recompute the diagnostics") from None
        epoch = row.get("epoch") if isinstance(row, dict) else None
        if isinstance(epoch, bool) or not isinstance(epoch, (int, float)) or not float(epoch).is_integer():
            raise CheckpointError(f"{path} line {number} has no integer 'epoch'; "
                                  "delete the file to recompute the diagnostics")
        rows.append(row)
    return rows


def _probe_history(history: Any, indices: torch.Tensor) -> dict[str, Any] | None:
    """The run's forgetting history (``ForgettingTracker`` or its state) restricted to the probe examples,
    re-indexed by probe position, as a tracker state (``None`` stays ``None``)."""
    if history is None:
        return None
    state = history.state_dict() if hasattr(history, "state_dict") else dict(history)
    return {"n": int(indices.numel()),
            **{k: torch.as_tensor(state[k])[indices] for k in ("prev", "forgets", "learned", "seen")}}


def _probe_selection(coreset, model: nn.Module, probe: Probe, epoch: int, device: torch.device, ctx: DistContext,
                     history=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(S, γ) on the probe (positions) by ``coreset``'s selector, fraction, budgets, proxy and seed."""
    from coreaug.api.coreset import AugmentedCoreset

    head = coreset.head if coreset.head is not None else last_linear(model)
    on_probe = AugmentedCoreset(
        TensorDataset(probe.x, probe.y), selector=coreset.selector, fraction=coreset.fraction, reselect_every=1,
        regime="subset", seed=coreset.seed, per_class=coreset.per_class, proxy=coreset.proxy,
        proxy_pool=coreset.proxy_pool, head=coreset.head, selector_options=coreset.selector_options,
        proxy_batch_size=coreset.proxy_batch_size, proj_dim=coreset.proj_dim, history=history,
        # the model's width: the probe may lack the highest classes
        num_classes=None if coreset.selector == "random" else int(head.out_features))
    sel = on_probe.select(model, epoch, device=device, ctx=ctx)
    return sel.indices, sel.weights


class TrainingDiagnostics:
    """Diagnostics of one run: decides when, computes (RNG-isolated, timed) and writes the files.

    Construct it on every rank before anything is written (it validates the probe size against the
    training set); only the main rank calls :meth:`run`. ``coreaug train`` builds it with :meth:`from_config`;
    :class:`~coreaug.train.observers.DiagnosticsObserver` calls it around the epochs, in ``coreaug train`` and,
    wrapped, in the Lightning callback.

    Args:
        probe_view: yields ``(x, y, index)`` under the test-time transform and has ``targets`` (e.g. an
            :class:`~coreaug.api.AugmentedCoreset`'s ``proxy_view``); the probe is drawn from it.
        strong_view: the strong-augmented copies (``None``: no shift or rotation).
        coreset: the run's :class:`~coreaug.api.AugmentedCoreset`, whose selector settings pick (S, γ) on the
            probe for ξ (``None`` or a regime without a subset: no ξ).
        every: K (diagnose after epochs 0, K, 2K, … and ``last_epoch``); probe_size: N; params: ``"last"``
            (classifier) or ``"all"``; seed: of the probe draw and the random baseline (default: the
            coreset's, else 0); out_dir: where ``diagnostics.csv`` / ``.jsonl`` go (``None``: keep the rows
            in :attr:`rows` only); batch_size: of the probe's forward passes (``"auto"``: by device);
        rows_from_files: :meth:`resume` reads the rows written in ``out_dir`` (a run folder it owns) instead
            of keeping :attr:`rows`.
    """

    def __init__(self, probe_view, *, strong_view=None, coreset=None, every: int = 1, probe_size: int = 256,
                 params: str = "last", last_epoch: int | None = None, seed: int | None = None,
                 out_dir: str | Path | None = None, device: torch.device | str = "cpu",
                 batch_size: int | str = "auto", rows_from_files: bool = False):
        if params not in PARAM_MODES:
            raise ConfigError(f"unknown diagnostics params {params!r}; choose one of: {', '.join(PARAM_MODES)}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"diagnostics interval must be an int >= 1, got {every!r}")
        if isinstance(probe_size, bool) or not isinstance(probe_size, int) or probe_size < 2:
            raise ConfigError(f"diagnostics probe size must be an int >= 2, got {probe_size!r}")
        n_train = len(probe_view)
        if probe_size > n_train:
            raise ConfigError(f"diagnostics probe size {probe_size} exceeds the {n_train} training examples; "
                              f"lower --diagnostics-probe")
        self.every, self.n, self.params, self.last_epoch = every, probe_size, params, last_epoch
        self.probe_view, self.strong_view = probe_view, strong_view
        self.coreset = coreset if coreset is not None and coreset.uses_subset else None
        self.seed = int(seed if seed is not None else getattr(coreset, "seed", 0))
        self.batch_size = batch_size
        self.out = None if out_dir is None else Path(out_dir)  # None: keep the rows, write no files
        self.rows_from_files = rows_from_files
        self.device = torch.device(device)
        self.rows: list[dict[str, Any]] = []
        self.probe: Probe | None = None
        self._model: nn.Module | None = None

    @classmethod
    def from_config(cls, cfg, views: dict[str, Any], out_dir: str | Path | None, device: torch.device,
                    coreset=None) -> "TrainingDiagnostics":
        """The diagnostics of a ``coreaug train`` run: ``cfg``'s diagnostics group over ``views`` (from
        :func:`coreaug.train.loop.prepare_data`), ξ from ``coreset`` (default: the one the run's
        :class:`~coreaug.train.trainer.Trainer` builds from ``cfg``)."""
        if coreset is None and cfg.uses_subset:
            from coreaug.train.subsets import coreset_for

            coreset = coreset_for(cfg, views["weak"], views["strong"], views["eval_train"])
        return cls(views["eval_train"], strong_view=views["strong"] if cfg.strong_aug != "none" else None,
                   coreset=coreset, every=int(cfg.diagnostics_every), probe_size=int(cfg.diagnostics_probe),
                   params=cfg.diagnostics_params, last_epoch=cfg.epochs, seed=cfg.seed, out_dir=out_dir,
                   device=device, batch_size=cfg.eval_batch_size, rows_from_files=True)

    def resume(self, start_epoch: int) -> None:
        """Keep the rows of epochs ≤ ``start_epoch`` (later ones are recomputed): those in ``out_dir`` when it is
        the run's own folder (``rows_from_files``: ``coreaug train``, whose run folder holds them), else those
        in :attr:`rows` (restored from a checkpoint, e.g. by the Lightning callback; files there are output
        only, so a stale or foreign ``diagnostics.jsonl`` is overwritten, never read)."""
        rows = read_diagnostics(self.out) if self.out is not None and self.rows_from_files else self.rows
        self.rows = [r for r in rows if int(r["epoch"]) <= start_epoch]

    def due(self, epoch: int) -> bool:
        """Diagnose the model after ``epoch`` epochs? (0, K, 2K, … and the last epoch; not twice.)"""
        if self.every <= 0 or any(int(r["epoch"]) == epoch for r in self.rows):
            return False
        return epoch % self.every == 0 or epoch == self.last_epoch

    def _selectors(self, epoch: int, history=None):
        """The run's selector and the random baseline on the probe (``None`` for runs without a subset)."""
        coreset = self.coreset
        if coreset is None:
            return None, None
        probe = self.probe
        # single process: under DDP only rank 0 diagnoses, so no collective selection here
        alone = DistContext(False, 0, 1, 0, self.device)

        def pick(logits: torch.Tensor, h: torch.Tensor, y: torch.Tensor):
            # exactly the run's selection step (proxy pass + selector + weights), with the probe as training set
            return _probe_selection(coreset, self._model, probe, epoch, self.device, alone,
                                    _probe_history(history, probe.indices))

        def rand(y: torch.Tensor):
            sel = select("random", labels=y, fraction=coreset.fraction, per_class=coreset.per_class,
                         seed=derive_seed(self.seed, epoch, _SEED_RANDOM) % 2**31)
            return sel.indices, torch.ones(sel.indices.numel())

        return pick, rand

    def run(self, model: nn.Module, epoch: int, history=None) -> dict[str, Any]:
        """Diagnose ``model`` (after ``epoch`` epochs), append the row, rewrite both files; return the row.

        ``history``: the run's training history (a ``ForgettingTracker``) for selectors that read it."""
        with Timer(self.device) as t, _isolated_rng():
            if self.probe is None:
                self.probe = draw_probe(self.probe_view, self.strong_view, self.n, seed=self.seed)
            self._model = model
            pick, rand = self._selectors(epoch, history)
            batch = resolve_eval_batch_size(self.batch_size, self.device)
            row = {"epoch": epoch, **probe_diagnostics(model, self.probe, params=self.params, select_fn=pick,
                                                      random_fn=rand, batch_size=batch)}
            row["probe_indices"] = self.probe.indices
            row = strict_json_value(row)  # tensors as lists, NaN/±inf as None: one row for CSV and JSONL
        row["time"] = t.elapsed  # computing only; the two small file writes below are not counted
        self.rows.append(row)
        self._write()
        return row

    def _write(self) -> None:
        if self.out is None:
            return
        write_text_atomic(self.out / DIAGNOSTICS_JSONL, "".join(dumps_json(r) + "\n" for r in self.rows))
        write_text_atomic(self.out / DIAGNOSTICS_CSV, csv_text(self.rows, CSV_FIELDS))
