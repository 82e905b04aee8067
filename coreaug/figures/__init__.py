"""Regenerate every figure with one call: ``make_figures("figures/")``.

Also ``coreaug figures --out figures/`` and ``python -m coreaug.figures --out figures/``. Each figure
is written as PNG and PDF with its data beside it (CSV, plus JSON for summaries); see
``figures/README.md`` for what each one shows.

1. ``fig1_singular_values``   — σ_i of the Jacobian, clean vs appended perturbed / augmented copies.
2. ``fig2_subspace_rotation`` — principal angles between top-r right singular subspaces.
3. ``fig3_alignment``          — alignment error ξ vs subset size (coreset, random, max-loss).
4. ``fig4_residual_decay``     — linearised residual dynamics, full data vs subsets.
5. ``fig5_accuracy_vs_time``   — test accuracy vs training wall-clock for the training methods.
6. ``fig6_training_diagnostics`` — condition number, spectrum shift and ξ (selector vs random) along
   training runs, from their spectral diagnostics (:mod:`coreaug.figures.training`).

The theory figures (1–4) live in :mod:`coreaug.figures.theory`; they use :mod:`spectra` for all the
linear algebra and :mod:`coreaug.select` for the subsets (``spectra`` itself never imports
``coreaug``, which is why the figure code lives here).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pandas as pd

from coreaug.errors import ConfigError
from coreaug.io import write_figure_atomic, write_json_atomic, write_text_atomic
from coreaug.runfolder import RunFolder

FIGURES: tuple[str, ...] = (
    "fig1_singular_values", "fig2_subspace_rotation", "fig3_alignment", "fig4_residual_decay", "fig5_accuracy_vs_time",
    "fig6_training_diagnostics",
)
#: Figures drawn from training runs rather than from the theory setting.
RUN_FIGURES: tuple[str, ...] = ("fig5_accuracy_vs_time", "fig6_training_diagnostics")

#: Quick built-in training runs for figure 5 when no run folders are given (digits, MLP, 1 seed).
QUICK_RUNS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("full", {"method": "full"}),
    ("full-aug", {"method": "full-aug"}),
    ("subset-only_coreset_10", {"method": "subset-only", "selector": "coreset", "fraction": 0.1}),
    ("subset-only_random_10", {"method": "subset-only", "selector": "random", "fraction": 0.1}),
    ("subset-only_maxloss_10", {"method": "subset-only", "selector": "maxloss", "fraction": 0.1}),
)
QUICK_BASE: dict[str, Any] = {
    "dataset": "digits", "model": "mlp", "batch_size": 32, "lr": 0.05, "epochs": 8, "milestones": [6],
    "weak_aug": "none", "strong_aug": "autoaugment", "reselect_every": 2, "device": "cpu", "threads": 1,
}


def _style() -> None:
    import matplotlib

    if "inline" not in matplotlib.get_backend():
        matplotlib.use("Agg")
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.1)


def save_figure(fig, out: Path, stem: str) -> list[Path]:
    """Save ``fig`` as ``out/stem.png`` and ``out/stem.pdf`` atomically, then close it."""
    import matplotlib.pyplot as plt

    paths = [write_figure_atomic(fig, out / f"{stem}.{fmt}", dpi=150, bbox_inches="tight") for fmt in ("png", "pdf")]
    plt.close(fig)
    return paths


def _save_csv(df: pd.DataFrame, path: Path) -> Path:
    write_text_atomic(path, df.to_csv(index=False))
    return path


# --------------------------------------------------------------------------- plots


def plot_singular_values(df: pd.DataFrame):
    """Fig. 1: (a) spectra, (b) relative increase when appending, (c) relative change in place."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    first = df[df.perturbation == df.perturbation.iloc[0]]
    axes[0].plot(first["index"], first["sigma_dup"], color="black", lw=2.2, label="clean, appended to itself [J; J]")
    for name, g in df.groupby("perturbation", sort=False):
        label = f"{name} (mean ‖δ‖₂={g.delta_l2.iloc[0]:.2f})"
        axes[0].plot(g["index"], g["sigma_appended"], lw=1.1, label=label)
        axes[1].plot(g["index"], 100 * g["rel_increase"], lw=1.1, label=name)
        axes[2].plot(g["index"], 100 * g["rel_change_inplace"], lw=1.1, label=name)
    axes[0].set(yscale="log", xlabel="index i (descending σ)", ylabel="singular value σ_i",
                title="(a) spectrum of [J; J̃] vs [J; J]")
    axes[1].set(xlabel="index i (descending σ)", ylabel="relative increase (%)",
                title="(b) appended: σ_i([J; J̃]) / σ_i([J; J]) − 1")
    axes[2].set(xlabel="index i (descending σ)", ylabel="relative change (%)",
                title="(c) in place: σ_i(J̃) / σ_i(J) − 1")
    axes[0].legend(fontsize=7)
    for ax in axes[1:]:
        ax.axhline(0, color="grey", lw=0.8)
    fig.suptitle("Jacobian singular values under bounded perturbations and strong augmentation "
                 "(digits, MLP; small σ grow relatively more)")
    fig.tight_layout()
    return fig


def plot_subspace_rotation(df: pd.DataFrame):
    """Fig. 2: largest principal angle between top-r right singular subspaces, clean vs appended."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.6))
    for name, g in df.groupby("perturbation", sort=False):
        ax.plot(g["rank"], g["max_angle_deg"], marker=".", label=name)
    ax.set(xlabel="r (top-r right singular subspace)", ylabel="largest principal angle (degrees)",
           title="Rotation of the top singular subspaces: [J; J] vs [J; J̃]", ylim=(0, 92))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_alignment(df: pd.DataFrame):
    """Fig. 3: relative alignment error ξ/‖J̃ᵀr̃/n‖ vs subset fraction, one panel per data version."""
    import matplotlib.pyplot as plt

    augs = list(dict.fromkeys(df.augmentation))
    fig, axes = plt.subplots(1, len(augs), figsize=(5.2 * len(augs), 4.4), sharey=True, squeeze=False)
    for ax, aug in zip(axes[0], augs):
        g = df[df.augmentation == aug]
        stats = g.groupby(["selector", "fraction"], sort=False).xi_relative.agg(["mean", "std"]).reset_index()
        for sel, s in stats.groupby("selector", sort=False):
            ax.errorbar(100 * s["fraction"], s["mean"], yerr=s["std"].fillna(0), marker="o", ms=4, capsize=3, label=sel)
        ax.set(xscale="log", yscale="log", xlabel="subset size (% of the sample)", title=f"augmented data: {aug}")
        ticks = sorted(100 * stats["fraction"].unique())
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.xaxis.set_minor_locator(plt.NullLocator())
    axes[0][0].set_ylabel("relative alignment error ξ / ‖J̃ᵀr̃/n‖")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Gradient alignment of weighted subsets with the full (augmented) data (lower is better)")
    fig.tight_layout()
    return fig


def plot_residual_decay(curves: pd.DataFrame, directions: pd.DataFrame):
    """Fig. 4: loss of the linearised model per step (top) and remaining residual per direction (bottom)."""
    import matplotlib.pyplot as plt

    augs = list(dict.fromkeys(curves.augmentation))
    fig, axes = plt.subplots(2, len(augs), figsize=(5.2 * len(augs), 8), squeeze=False)
    for j, aug in enumerate(augs):
        for run, g in curves[curves.augmentation == aug].groupby("run", sort=False):
            axes[0][j].plot(g["step"], g["loss"], label=run)
        axes[0][j].set(yscale="log", xlabel="gradient step t", title=f"data: {aug}")
        d = directions[directions.augmentation == aug]
        for run, g in d.groupby("run", sort=False):
            smooth = g["remaining"].rolling(25, center=True, min_periods=1).median()
            axes[1][j].plot(g["direction"], smooth, label=run)
        axes[1][j].set(xscale="log", yscale="log", ylim=(1e-4, 3), xlabel="singular direction i (descending σ)")
    axes[0][0].set_ylabel("½‖r_t‖² / n")
    axes[1][0].set_ylabel("|u_iᵀ r_T| / |u_iᵀ r_0| (rolling median)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Linearised residual dynamics r_{t+1} = r_t − η G[:, S] diag(γ) r_t[S]: full data vs 10% subsets")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- runners


def _quick_runs(root: Path, *, quiet: bool) -> list[Path]:
    from coreaug.train import resolve_config, train

    dirs = []
    for name, over in QUICK_RUNS:
        run_dir = root / name
        if not RunFolder(run_dir).results_path.is_file():
            if run_dir.exists():
                import shutil

                shutil.rmtree(run_dir)
            cfg = resolve_config(None, None, {**QUICK_BASE, **over, "seed": 0})
            train(cfg, run_dir, quiet=quiet)
        dirs.append(run_dir)
    return dirs


def make_figures(
    out: str | Path = "figures",
    *,
    only: Iterable[str] | None = None,
    runs: Sequence[str | Path] | None = None,
    seed: int = 0,
    quiet: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, list[Path]]:
    """Regenerate the figures (all, or those named in ``only``) into ``out``.

    ``runs``: run folders (or folders of run folders) written by ``coreaug train`` for figures 5 and 6
    (figure 6 uses those with diagnostics); without them, five quick digits runs are trained into
    ``out/runs`` first for figure 5 (about a minute), and three ``digits-quick`` runs with diagnostics
    after every epoch into ``out/runs/diagnostics`` for figure 6 (about 1.5 minutes).
    Returns the written paths per figure.
    """
    from coreaug.figures import theory
    from coreaug.report import accuracy_vs_time_figure, find_runs, load_run, runs_frame

    wanted = list(FIGURES if only is None else only)
    unknown = [w for w in wanted if w not in FIGURES]
    if unknown:
        raise ConfigError(f"unknown figure(s) {', '.join(unknown)}; choose from: {', '.join(FIGURES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _style()
    written: dict[str, list[Path]] = {}
    setting = None
    if any(w not in RUN_FIGURES for w in wanted):
        t0 = time.perf_counter()
        setting = theory.theory_setting(seed=seed)
        log(f"theory setting: MLP on digits, test accuracy {setting.test_accuracy:.3f}, n={setting.x.shape[0]} "
            f"({time.perf_counter() - t0:.0f} s)")
    for name in wanted:
        t0 = time.perf_counter()
        if name == "fig1_singular_values":
            df, summary = theory.singular_value_shifts(setting)
            paths = [_save_csv(df, out / f"{name}.csv")] + save_figure(plot_singular_values(df), out, name)
        elif name == "fig2_subspace_rotation":
            df, summary = theory.subspace_rotation(setting)
            paths = [_save_csv(df, out / f"{name}.csv")] + save_figure(plot_subspace_rotation(df), out, name)
        elif name == "fig3_alignment":
            df = theory.alignment_vs_size(setting)
            summary = (df.groupby(["augmentation", "selector", "fraction"]).xi_relative.mean()
                       .unstack().round(4).reset_index().to_dict(orient="records"))
            paths = [_save_csv(df, out / f"{name}.csv")] + save_figure(plot_alignment(df), out, name)
        elif name == "fig4_residual_decay":
            curves, directions, summary = theory.residual_decay(setting)
            paths = [_save_csv(curves, out / f"{name}_loss.csv"), _save_csv(directions, out / f"{name}_directions.csv")]
            paths += save_figure(plot_residual_decay(curves, directions), out, name)
        elif name == "fig6_training_diagnostics":
            from coreaug.figures.training import diagnostic_runs, diagnostics_summary
            from coreaug.report import diagnostics_figure, diagnostics_frame

            run_dirs = find_runs(runs) if runs else diagnostic_runs(out / "runs" / "diagnostics", quiet=quiet)
            loaded = [r for r in (load_run(d) for d in run_dirs) if not r["diagnostics"].empty]
            if not loaded:
                raise ConfigError("fig6 needs runs trained with --diagnostics-every K; none of --runs has diagnostics")
            summary = {"runs": [r["dir"] for r in loaded], "per_run": diagnostics_summary(loaded)}
            paths = [_save_csv(diagnostics_frame(loaded), out / f"{name}.csv")]
            paths += save_figure(diagnostics_figure(loaded), out, name)
        else:
            run_dirs = find_runs(runs) if runs else _quick_runs(out / "runs", quiet=quiet)
            loaded = [load_run(d) for d in run_dirs]
            df = runs_frame(loaded)
            summary = {"runs": [str(d) for d in run_dirs]}
            curves = pd.concat([r["metrics"].assign(run=Path(r["dir"]).name) for r in loaded if not r["metrics"].empty])
            paths = [_save_csv(df, out / f"{name}_runs.csv"), _save_csv(curves, out / f"{name}_curves.csv")]
            paths += save_figure(accuracy_vs_time_figure(loaded), out, name)
        json_path = out / f"{name}.json"
        write_json_atomic(json_path, summary)
        written[name] = paths + [json_path]
        log(f"{name}: {', '.join(p.name for p in written[name])} ({time.perf_counter() - t0:.0f} s)")
    return written
