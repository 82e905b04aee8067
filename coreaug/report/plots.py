"""Figures of a report: accuracy against wall-clock, the spectral diagnostics per epoch, final accuracy per selector."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from coreaug.errors import ConfigError
from coreaug.io import write_figure_atomic
from coreaug.report.tables import _METHOD_ORDER


def plot_accuracy_vs_time(runs: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Write :func:`accuracy_vs_time_figure` of ``runs`` as a PNG to ``path`` (atomically)."""
    import matplotlib.pyplot as plt

    fig = accuracy_vs_time_figure(runs)
    write_figure_atomic(fig, path, dpi=110)
    plt.close(fig)
    return Path(path)


def accuracy_vs_time_figure(runs: Sequence[dict[str, Any]]):
    """Test accuracy against cumulative training wall-clock (log scale), mean over seeds per configuration.

    One panel per subset regime (plus one for the baselines when there is no regime); colour = selector,
    line style = subset fraction; ``full`` (grey) and ``full-aug`` (black) are drawn in every panel.
    Returns the matplotlib figure.
    """
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg") and "inline" not in matplotlib.get_backend():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[tuple, list[pd.DataFrame]] = {}
    for run in runs:
        m, r = run["metrics"], run["results"]
        if m.empty:
            continue
        key = (r.get("method"), r.get("selector") or "-", float(r.get("fraction") or 1.0))
        curves.setdefault(key, []).append(m[["epoch", "wall_clock", "test_acc"]])
    mean = {k: pd.concat(v).groupby("epoch").mean() for k, v in curves.items()}
    regimes = sorted({k[0] for k in mean if k[0] not in ("full", "full-aug")},
                     key=lambda m: _METHOD_ORDER.get(m, 99)) or ["baselines"]
    fractions = sorted({k[2] for k in mean if k[0] not in ("full", "full-aug")})
    styles = ["-", "--", ":", "-."]
    colors = {"coreset": "tab:blue", "random": "tab:orange", "maxloss": "tab:green"}
    fig, axes = plt.subplots(1, len(regimes), figsize=(5.5 * len(regimes), 4.5), squeeze=False, sharey=True)
    for ax, regime in zip(axes[0], regimes):
        for (method, selector, frac), c in sorted(mean.items()):
            if method in ("full", "full-aug"):
                ax.plot(c["wall_clock"], 100 * c["test_acc"], color="black" if method == "full-aug" else "grey",
                        marker=".", label=method)
            elif method == regime:
                ls = styles[fractions.index(frac) % len(styles)]
                ax.plot(c["wall_clock"], 100 * c["test_acc"], ls, color=colors.get(selector, "tab:red"), marker=".",
                        label=f"{selector} {100 * frac:.0f}%")
        ax.set_xscale("log")
        ax.set_title(regime)
        ax.set_xlabel("training wall-clock (s, training + selection)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("test accuracy (%)")
    datasets = sorted({str(r["results"].get("dataset")) for r in runs})
    fig.suptitle(f"accuracy vs wall-clock ({', '.join(datasets)}; mean over seeds)")
    fig.tight_layout()
    return fig


def run_label(run: dict[str, Any]) -> str:
    """A short legend label: ``method[ selector fraction%]``."""
    r = run["results"]
    label = str(r.get("method"))
    if r.get("selector"):
        label += f" {r.get('selector')} {100 * float(r.get('fraction') or 1.0):.0f}%"
    return label


def diagnostics_frame(runs: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """All runs' diagnostics rows, with ``run`` (folder) and ``label`` columns (empty if none has any).

    Labels are :func:`run_label`, with the folder name appended where two runs would share one."""
    with_diag = [run for run in runs if not run.get("diagnostics", pd.DataFrame()).empty]
    labels = [run_label(run) for run in with_diag]
    labels = [f"{lab} ({Path(run['dir']).name})" if labels.count(lab) > 1 else lab for lab, run in zip(labels, with_diag)]
    frames = [run["diagnostics"].assign(run=run["dir"], label=lab) for run, lab in zip(with_diag, labels)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def diagnostics_figure(runs: Sequence[dict[str, Any]]):
    """Spectral diagnostics against epoch, one colour per run (runs without diagnostics are skipped).

    (a) condition number σ_1/σ_rank of the probe Jacobian; (b) relative increase of the bottom 10%
    (solid) and top 10% (dotted) singular values when strong-augmented copies are appended;
    (c, d) alignment error ξ/‖J̃ᵀr̃/N‖ of the run's selector (solid) vs a random subset (dashed) on
    the clean and on the augmented probe (runs with a subset only). Returns the matplotlib figure.
    """
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg") and "inline" not in matplotlib.get_backend():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = diagnostics_frame(runs)
    if df.empty:
        raise ConfigError("none of the runs has diagnostics (train with --diagnostics-every K)")
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def col(g: pd.DataFrame, name: str) -> pd.Series:
        return pd.to_numeric(g[name], errors="coerce") if name in g else pd.Series(float("nan"), index=g.index)

    for i, (label, g) in enumerate(df.groupby("label", sort=False)):
        c = colors[i % len(colors)]
        g = g.sort_values("epoch")
        axes[0].plot(g["epoch"], col(g, "cond"), marker=".", color=c, label=label)
        axes[1].plot(g["epoch"], 100 * col(g, "shift_bottom10"), marker=".", color=c, label=f"{label} (bottom 10%)")
        axes[1].plot(g["epoch"], 100 * col(g, "shift_top10"), ":", color=c)
        for ax, tag in ((axes[2], "clean"), (axes[3], "aug")):
            xs, xr = col(g, f"xi_subset_{tag}"), col(g, f"xi_random_{tag}")
            if xs.notna().any():
                ax.plot(g["epoch"], xs, marker=".", color=c, label=f"{label}")
                ax.plot(g["epoch"], xr, "--", marker="x", ms=4, color=c, label=f"{label}: random subset")
    axes[0].set(yscale="log", xlabel="epoch", ylabel="σ_1 / σ_rank", title="(a) condition number of the probe Jacobian")
    axes[1].set(xlabel="epoch", ylabel="relative increase (%)",
                title="(b) σ_i([J; J̃]) / σ_i([J; J]) − 1: bottom 10% (—), top 10% (···)")
    axes[1].axhline(0, color="grey", lw=0.8)
    for ax, what in ((axes[2], "clean probe"), (axes[3], "augmented probe")):
        ax.set(yscale="log", xlabel="epoch", ylabel="ξ / ‖J̃ᵀr̃/N‖",
               title=f"({'c' if ax is axes[2] else 'd'}) alignment error, {what}")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=7)
    if axes[2].get_legend_handles_labels()[0]:
        axes[2].legend(fontsize=7)
    fig.suptitle("Spectral diagnostics during training (probe set; selector: solid, random subset: dashed)")
    fig.tight_layout()
    return fig


def selector_accuracy_figure(summary: pd.DataFrame):
    """Mean final accuracy ± CI per selector: one panel per (model, subset method), one marker per fraction;
    dashed lines at the full-aug and full means. Returns the matplotlib figure."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg") and "inline" not in matplotlib.get_backend():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sub = summary[~summary["method"].isin(["full", "full-aug"])]
    panels = list(dict.fromkeys(zip(sub["model"], sub["method"]))) or [(None, "baselines")]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(6.0, 0.7 * max(sub["selector"].nunique(), 1) + 3),
                                                      3.2 * len(panels)), squeeze=False)
    fractions = sorted(sub["fraction"].unique())
    width = 0.8 / max(len(fractions), 1)
    for ax, (model, method) in zip(axes[:, 0], panels):
        g = sub[(sub["model"] == model) & (sub["method"] == method)]
        selectors = list(dict.fromkeys(g["selector"]))
        for j, frac in enumerate(fractions):
            gf = g[g["fraction"] == frac].set_index("selector").reindex(selectors)
            xs = [i + (j - (len(fractions) - 1) / 2) * width for i in range(len(selectors))]
            ax.errorbar(xs, 100 * gf["acc_mean"], yerr=100 * gf["acc_ci"].fillna(0), fmt="o", capsize=3, ms=4,
                        label=f"{100 * frac:.0f}%")
        for ref, ls in (("full-aug", "--"), ("full", ":")):
            r = summary[(summary["model"] == model) & (summary["method"] == ref)]
            if len(r):
                ax.axhline(100 * r["acc_mean"].iloc[0], color="black", ls=ls, lw=1, label=ref)
        ax.set_xticks(range(len(selectors)), selectors, rotation=30, ha="right", fontsize=8)
        lo = 100 * float((g["acc_mean"] - g["acc_ci"].fillna(0)).min()) if len(g) else 0.0
        ax.set_ylim(max(0.0, lo - 1), 100)
        ax.set_title(f"{model} · {method}", fontsize=9)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=4)
    fig.suptitle("final accuracy per selector, mean ± 95% CI over seeds", fontsize=10)
    fig.tight_layout()
    return fig
