"""Reports across run folders: per-run rows, a per-configuration table over seeds, accuracy-vs-time plot.

A run folder is what :func:`coreaug.train.train` writes (``config.json``, ``results.json``,
``metrics.csv``). Runs that differ only in ``seed`` are grouped; each group gets accuracy mean ± std
over seeds (sample std, 0 for one seed), mean training wall-clock (training + selection, evaluation
excluded) and the **speed-up vs ``full-aug``** = mean time of the ``full-aug`` group with the same
dataset, model, epochs and label noise ÷ this group's mean time (docs/paper-notes.md §5.6: measured on the same
device). Every file is written atomically. A run folder reached twice (named twice, or inside a named
folder, or through a symlink) counts once, and a report never writes into a run folder.

Runs trained with ``--diagnostics-every K`` also carry ``diagnostics.csv``
(:mod:`coreaug.train.diagnostics`); the report then adds ``diagnostics.csv`` (all runs' rows, with a
``run`` column) and ``diagnostics.png``: the probe Jacobian's condition number, the relative increase
of its bottom/top 10% singular values when augmented copies are appended, and the alignment error ξ
of the run's selector vs a random subset (clean and augmented probe), against epoch, one line per run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from coreaug.errors import ConfigError, OutputError
from coreaug.io import write_figure_atomic, write_text_atomic

GROUP_KEYS: tuple[str, ...] = ("dataset", "model", "epochs", "label_noise", "method", "pruning", "selector",
                               "fraction")
BASELINE_KEYS: tuple[str, ...] = ("dataset", "model", "epochs", "label_noise")


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """Read one run folder → ``{"dir", "config", "results", "metrics", "diagnostics"}`` (DataFrames;
    ``diagnostics`` is empty for runs without ``diagnostics.csv``)."""
    d = Path(run_dir)
    res_path = d / "results.json"
    if not res_path.is_file():
        raise ConfigError(f"{d} is not a finished run folder (no results.json)")
    try:
        results = json.loads(res_path.read_text(encoding="utf-8"))
        config = json.loads((d / "config.json").read_text(encoding="utf-8")) if (d / "config.json").is_file() else {}
        metrics = pd.read_csv(d / "metrics.csv") if (d / "metrics.csv").is_file() else pd.DataFrame()
        diagnostics = pd.read_csv(d / "diagnostics.csv") if (d / "diagnostics.csv").is_file() else pd.DataFrame()
    except (json.JSONDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read run folder {d}: {type(exc).__name__}") from None
    return {"dir": str(d), "config": config, "results": results, "metrics": metrics, "diagnostics": diagnostics}


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Expand ``paths``: a run folder is kept; a folder of run folders is expanded one level (sorted).

    A run folder reached more than once (named twice, named and inside a named folder, through a symlink)
    is kept once, at its first place; :func:`find_runs_once` also says which were dropped."""
    return find_runs_once(paths)[0]


def find_runs_once(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[Path, Path]]]:
    """:func:`find_runs` and the run folders it left out as repeats: ``(runs, [(repeat, kept), ...])``.

    Two paths are the same run when they name the same folder on disk (same device and inode, so a
    symlink or a bind mount is seen through), whatever their spelling."""
    found: list[Path] = []
    for p in map(Path, paths):
        if (p / "results.json").is_file():
            found.append(p)
        elif p.is_dir():
            kids = sorted(c for c in p.iterdir() if (c / "results.json").is_file())
            if not kids:
                raise ConfigError(f"{p} holds no finished run (no results.json in it or its sub-folders)")
            found.extend(kids)
        else:
            raise ConfigError(f"run folder {p} does not exist")
    if not found:
        raise ConfigError("no run folders given")
    return unique_folders(found)


def folder_identity(path: str | Path) -> tuple[int, int] | str:
    """What makes two paths one folder: ``(device, inode)`` (symlinks followed), else the resolved path."""
    try:
        st = Path(path).stat()
    except OSError:
        return str(Path(path).resolve())
    return (st.st_dev, st.st_ino)


def unique_folders(folders: Iterable[Path]) -> tuple[list[Path], list[tuple[Path, Path]]]:
    """``folders`` without repeats of the same folder on disk (first kept) and the ``(repeat, kept)`` pairs."""
    kept: dict[Any, Path] = {}
    repeats: list[tuple[Path, Path]] = []
    for f in folders:
        first = kept.setdefault(folder_identity(f), f)
        if first is not f:
            repeats.append((f, first))
    return list(kept.values()), repeats


def repeats_note(repeats: Sequence[tuple[Path, Path]], k: int = 3) -> str:
    """One line: ``N run folder(s) reached more than once, counted once: a (also as b), …``."""
    shown = ", ".join(f"{kept} (reached twice)" if str(rep) == str(kept) else f"{kept} (also as {rep})"
                      for rep, kept in repeats[:k])
    more = f", … +{len(repeats) - k} more" if len(repeats) > k else ""
    return f"{len(repeats)} run folder(s) reached more than once, counted once: {shown}{more}"


#: Files only a run folder of ``coreaug train`` holds (with ``config.json``: its per-epoch files too).
RUN_FOLDER_MARKERS: tuple[str, ...] = ("results.json", "checkpoint.pt", "metrics.jsonl", ".coreaug.lock")
_RUN_FOLDER_WITH_CONFIG: tuple[str, ...] = ("metrics.csv", "diagnostics.csv", "diagnostics.jsonl")


def is_run_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a run of ``coreaug train`` (finished, running or stopped)."""
    d = Path(folder)
    if any((d / m).is_file() for m in RUN_FOLDER_MARKERS):
        return True
    return (d / "config.json").is_file() and any((d / m).is_file() for m in _RUN_FOLDER_WITH_CONFIG)


def check_report_folder(out_dir: str | Path, run_dirs: Iterable[str | Path] = ()) -> Path:
    """Refuse (one-line :class:`OutputError`) a report folder that is, or lies inside, a run folder: one of
    ``run_dirs`` or any folder that :func:`is_run_folder`. A report never writes into a run folder, so it
    can never overwrite a run's own files (``diagnostics.csv``, ``metrics.csv``, …)."""
    out = Path(out_dir)
    runs = {folder_identity(d): Path(d) for d in run_dirs}
    for folder in [out, *out.resolve().parents]:
        if not folder.is_dir():
            continue
        run = runs.get(folder_identity(folder))
        if run is not None or is_run_folder(folder):
            where = ("is a run folder" if folder_identity(folder) == folder_identity(out)
                     else f"is inside run folder {run or folder}")
            raise OutputError(f"report folder {out} {where}: a report never writes into a run folder; "
                              "choose another --out")
    return out


def runs_frame(runs: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: grouping keys, seed, accuracies and times."""
    rows = []
    for run in runs:
        r = run["results"]
        rows.append({
            "run": run["dir"], "dataset": r.get("dataset"), "model": r.get("model"), "epochs": r.get("epochs"),
            "label_noise": r.get("label_noise", 0.0), "method": r.get("method"),
            "pruning": pruning_label(run.get("config") or {}),
            "selector": r.get("selector") or "-", "fraction": float(r.get("fraction") or 1.0),
            "seed": r.get("seed"), "final_acc": r.get("final_test_acc"), "best_acc": r.get("best_test_acc"),
            "time": r.get("wall_clock_total"), "train_time": r.get("train_time_total"),
            "selection_time": r.get("selection_time_total"),
            "diagnostics_time": r.get("diagnostics_time_total", 0.0),  # not part of "time" (the speed-up input)
            "examples_per_epoch": (r.get("examples_seen_total") or 0) / max(r.get("epochs_done") or 1, 1),
            # cost (coreaug.train.cost; absent in runs made before cost accounting)
            "example_passes": r.get("example_passes_total"), "peak_memory_mb": r.get("peak_memory_mb"),
            "selection_pays": r.get("selection_pays"), "selection_saved_s": r.get("selection_saved_s"),
        })
    return pd.DataFrame(rows)


def pruning_label(config: dict[str, Any]) -> str:
    """``-`` without dynamic pruning, else e.g. ``infobatch r=0.5`` / ``ucb keep=0.7``."""
    pruning = config.get("pruning") or "none"
    if pruning == "none":
        return "-"
    if pruning == "infobatch":
        return f"infobatch r={float(config.get('prune_ratio', 0.5)):g}"
    return f"{pruning} keep={float(config.get('prune_keep', 0.7)):g}"


def method_cell(row: pd.Series) -> str:
    """The method column of a summary table: the method and its dynamic pruning, if any."""
    return str(row["method"]) + ("" if row.get("pruning", "-") in ("-", None) else f" + {row['pruning']}")


_METHOD_ORDER = {"full": 0, "full-aug": 1, "full+aug-subset": 2, "subset-only": 3, "random+aug-subset": 4, "subset": 5}


def summary_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Group runs over seeds; add accuracy mean/std, mean times and speed-up vs ``full-aug``."""
    def std(x: pd.Series) -> float:
        return float(x.std(ddof=1)) if len(x) > 1 else 0.0

    g = df.groupby(list(GROUP_KEYS), dropna=False, sort=False)
    out = g.agg(
        seeds=("seed", "count"), acc_mean=("final_acc", "mean"), acc_std=("final_acc", std),
        best_acc_mean=("best_acc", "mean"), time_mean=("time", "mean"), time_std=("time", std),
        selection_time_mean=("selection_time", "mean"), examples_per_epoch=("examples_per_epoch", "mean"),
    ).reset_index()
    base = out[(out["method"] == "full-aug") & (out["pruning"] == "-")].set_index(list(BASELINE_KEYS))["time_mean"]
    base = base[~base.index.duplicated()]

    def speedup(row: pd.Series) -> float:
        key = tuple(row[k] for k in BASELINE_KEYS)
        t = base.get(key, float("nan"))
        return float(t) / float(row["time_mean"]) if row["time_mean"] and not math.isnan(t) else float("nan")

    out["speedup_vs_full_aug"] = out.apply(speedup, axis=1) if len(out) else []
    out["_order"] = out["method"].map(lambda m: _METHOD_ORDER.get(m, 99))
    out = out.sort_values(["dataset", "model", "_order", "fraction", "selector"], kind="stable").drop(columns="_order")
    return out.reset_index(drop=True)


def markdown_table(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table (accuracy in %, mean ± std over seeds)."""
    header = ["dataset", "model", "method", "selector", "subset", "seeds", "accuracy (%)", "best (%)",
              "time (s)", "selection (s)", "examples/epoch", "speed-up vs full-aug"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for _, r in summary.iterrows():
        su = r["speedup_vs_full_aug"]
        cells = [
            str(r["dataset"]), str(r["model"]), method_cell(r), str(r["selector"]),
            f"{100 * r['fraction']:.0f}%" if r["method"] not in ("full", "full-aug") else "100%",
            str(int(r["seeds"])), f"{100 * r['acc_mean']:.2f} ± {100 * r['acc_std']:.2f}",
            f"{100 * r['best_acc_mean']:.2f}", f"{r['time_mean']:.2f}", f"{r['selection_time_mean']:.2f}",
            f"{r['examples_per_epoch']:.0f}", "–" if math.isnan(su) else f"{su:.2f}x",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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


def write_report(run_dirs: Iterable[str | Path], out_dir: str | Path) -> dict[str, Path]:
    """Load runs, write ``runs.csv``, ``summary.csv``, ``summary.md`` and ``accuracy_vs_time.png`` to ``out_dir``;
    plus ``diagnostics.csv`` and ``diagnostics.png`` when any run has diagnostics. Each run counts once
    (:func:`find_runs`); ``out_dir`` must not be a run folder (:func:`check_report_folder`)."""
    found = find_runs(run_dirs)
    out = check_report_folder(out_dir, found)
    runs = [load_run(d) for d in found]
    df = runs_frame(runs)
    summary = summary_frame(df)
    paths = {"runs": out / "runs.csv", "csv": out / "summary.csv", "md": out / "summary.md",
             "png": out / "accuracy_vs_time.png"}
    write_text_atomic(paths["runs"], df.to_csv(index=False))
    write_text_atomic(paths["csv"], summary.to_csv(index=False))
    write_text_atomic(paths["md"], markdown_table(summary) + cost_sections(runs))
    plot_accuracy_vs_time(runs, paths["png"])
    paths.update(write_cost_report(runs, out))
    diag = diagnostics_frame(runs)
    if not diag.empty:
        import matplotlib.pyplot as plt

        paths["diagnostics_csv"] = out / "diagnostics.csv"
        paths["diagnostics_png"] = out / "diagnostics.png"
        write_text_atomic(paths["diagnostics_csv"], diag.to_csv(index=False))
        fig = diagnostics_figure(runs)
        write_figure_atomic(fig, paths["diagnostics_png"], dpi=110)
        plt.close(fig)
    return paths


# ------------------------------------------------------------------------------------------------
# Statistics over seeds for sweeps (``coreaug sweep``): 95% t confidence intervals, Welch's test of
# every selector against ``random`` at the same method and fraction, selection share, paper column.
# ------------------------------------------------------------------------------------------------

#: Significance level of the "within noise" verdict: Welch's two-sided t-test p ≥ NOISE_ALPHA.
NOISE_ALPHA = 0.05
#: The reference selector every other selector is tested against.
REFERENCE_SELECTOR = "random"
#: Keys that pair a selector's group with its reference group (everything in GROUP_KEYS but selector).
PAIR_KEYS: tuple[str, ...] = tuple(k for k in GROUP_KEYS if k != "selector")


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """``(mean, half-width)`` of the two-sided ``level`` confidence interval of the mean from Student's t:
    half-width = t_{(1+level)/2, n−1} · s / √n with the sample std s (ddof 1). NaN half-width for n < 2."""
    from scipy import stats

    x = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(x)
    if n == 0:
        return float("nan"), float("nan")
    mean = sum(x) / n
    if n < 2:
        return mean, float("nan")
    s = math.sqrt(sum((v - mean) ** 2 for v in x) / (n - 1))
    return mean, float(stats.t.ppf(0.5 + level / 2, n - 1)) * s / math.sqrt(n)


def welch_test(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """``(mean(a) − mean(b), two-sided p)`` of Welch's unequal-variance t-test. p is NaN when either
    sample has fewer than 2 values; with zero variance in both, p = 1 for equal means and 0 otherwise."""
    from scipy import stats

    a = [float(v) for v in a if v is not None and not math.isnan(float(v))]
    b = [float(v) for v in b if v is not None and not math.isnan(float(v))]
    if not a or not b:
        return float("nan"), float("nan")
    diff = sum(a) / len(a) - sum(b) / len(b)
    if len(a) < 2 or len(b) < 2:
        return diff, float("nan")
    va, vb = pd.Series(a).var(ddof=1), pd.Series(b).var(ddof=1)
    if va == 0 and vb == 0:
        return diff, 1.0 if diff == 0 else 0.0
    return diff, float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def noise_verdict(diff: float, p: float, alpha: float = NOISE_ALPHA) -> str:
    """"better" / "worse" when Welch's p < alpha, "within noise" when p ≥ alpha, "n/a" without a test."""
    if math.isnan(p):
        return "n/a"
    if p >= alpha:
        return "within noise"
    return "better" if diff > 0 else "worse"


def format_p(p: float) -> str:
    """``p=0.042`` / ``p<0.001`` / ``p=n/a``."""
    if math.isnan(p):
        return "p=n/a"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def selection_share(results: dict[str, Any]) -> float:
    """Share of training wall-clock spent selecting: ``results["selection_share"]`` where the run recorded
    it, else ``selection_time_total / wall_clock_total`` (NaN without a positive total)."""
    share = results.get("selection_share")
    if share is not None:
        return float(share)
    total, sel = results.get("wall_clock_total"), results.get("selection_time_total")
    if not total or sel is None:
        return float("nan")
    return float(sel) / float(total)


def stats_summary_frame(runs: Sequence[dict[str, Any]], *, level: float = 0.95,
                        alpha: float = NOISE_ALPHA) -> pd.DataFrame:
    """:func:`summary_frame` plus ``acc_ci`` (half-width of the ``level`` t interval), ``selection_share_mean``,
    the comparison with ``random`` at the same method and fraction (``vs_random_diff``, ``vs_random_p``:
    Welch's two-sided t-test on final accuracies over seeds; ``vs_random``: better / worse / within noise /
    n/a / reference) and ``paper`` (published headline numbers, :mod:`coreaug.paper_numbers`)."""
    return _stats_frames(runs, level=level, alpha=alpha)[1]


def _stats_frames(runs: Sequence[dict[str, Any]], *, level: float, alpha: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(per-run frame with selection_share, stats summary)``: the two tables of the sweep report."""
    from coreaug.paper_numbers import paper_cell

    df = runs_frame(runs)
    df["selection_share"] = [selection_share(r["results"]) for r in runs]
    summary = summary_frame(df)
    keys = list(GROUP_KEYS)
    accs = {k: list(g["final_acc"]) for k, g in df.groupby(keys, dropna=False, sort=False)}
    shares = df.groupby(keys, dropna=False, sort=False)["selection_share"].mean()
    ci, share, diffs, ps, verdicts, paper = [], [], [], [], [], []
    for _, row in summary.iterrows():
        key = tuple(row[k] for k in keys)
        ci.append(t_interval(accs[key], level)[1])
        share.append(float(shares.get(key, float("nan"))))
        if row["method"] in ("full", "full-aug") or row["selector"] == "-":
            diffs.append(float("nan")), ps.append(float("nan")), verdicts.append("")
        elif row["selector"] == REFERENCE_SELECTOR:
            diffs.append(float("nan")), ps.append(float("nan")), verdicts.append("reference")
        else:
            ref = tuple(REFERENCE_SELECTOR if k == "selector" else row[k] for k in keys)
            if ref not in accs:
                diffs.append(float("nan")), ps.append(float("nan")), verdicts.append("")
            else:
                d, p = welch_test(accs[key], accs[ref])
                diffs.append(d), ps.append(p), verdicts.append(noise_verdict(d, p, alpha))
        subset = row["method"] not in ("full", "full-aug")
        paper.append(paper_cell(row["dataset"], row["selector"] if subset else None, row["fraction"]))
    summary["acc_ci"] = ci
    summary["ci_level"] = level
    summary["selection_share_mean"] = share
    summary["vs_random_diff"] = diffs
    summary["vs_random_p"] = ps
    summary["vs_random"] = verdicts
    summary["paper"] = paper
    return df, summary


def stats_markdown_table(summary: pd.DataFrame, *, alpha: float = NOISE_ALPHA) -> str:
    """Markdown of :func:`stats_summary_frame`: accuracy mean ± std and mean ± CI (in %), the Welch
    comparison with random, time, selection share, speed-up, and the paper column when any row has one."""
    level = float(summary["ci_level"].iloc[0]) if len(summary) else 0.95
    show_paper = bool(len(summary)) and any(bool(v) for v in summary["paper"])
    header = ["dataset", "model", "method", "selector", "subset", "seeds", "accuracy mean ± std (%)",
              f"accuracy mean ± {100 * level:.0f}% CI (%)", f"vs random (Welch, α={alpha:g})", "time (s)",
              "selection share", "speed-up vs full-aug"] + (["paper"] if show_paper else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for _, r in summary.iterrows():
        su, ci, share = r["speedup_vs_full_aug"], r["acc_ci"], r["selection_share_mean"]
        if r["vs_random"] in ("better", "worse", "within noise"):
            vs = f"{100 * r['vs_random_diff']:+.2f} pts, {format_p(r['vs_random_p'])}, {r['vs_random']}"
        else:
            vs = r["vs_random"] or "–"
        cells = [
            str(r["dataset"]), str(r["model"]), method_cell(r), str(r["selector"]),
            f"{100 * r['fraction']:.0f}%" if r["method"] not in ("full", "full-aug") else "100%",
            str(int(r["seeds"])), f"{100 * r['acc_mean']:.2f} ± {100 * r['acc_std']:.2f}",
            f"{100 * r['acc_mean']:.2f} ± " + ("–" if math.isnan(ci) else f"{100 * ci:.2f}"), vs,
            f"{r['time_mean']:.2f}", "–" if math.isnan(share) else f"{100 * share:.1f}%",
            "–" if math.isnan(su) else f"{su:.2f}x",
        ] + ([r["paper"] or "–"] if show_paper else [])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def stats_notes(summary: pd.DataFrame, *, alpha: float = NOISE_ALPHA) -> str:
    """The Markdown notes under the stats table: how every column was computed."""
    from coreaug.paper_numbers import PAPER_NOTE

    level = float(summary["ci_level"].iloc[0]) if len(summary) else 0.95
    notes = [
        "accuracy: final-epoch test accuracy over seeds; ± std = sample standard deviation; "
        f"± {100 * level:.0f}% CI = half-width t_(n−1) · s / √n of the two-sided Student-t interval of the mean.",
        f"vs random: difference of mean accuracy to the `random` selector at the same method and subset size, "
        f"Welch's unequal-variance two-sided t-test over seeds; 'within noise' = p ≥ {alpha:g}, "
        "'better'/'worse' = p < " f"{alpha:g}.",
        "time: training + selection wall-clock (evaluation excluded); selection share = selection time / that "
        "time; speed-up vs full-aug = full-aug mean time / this mean time, same machine.",
    ]
    if len(summary) and any(bool(v) for v in summary["paper"]):
        notes.append(PAPER_NOTE + ".")
    return "\n".join(f"- {n}" for n in notes) + "\n"


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


def write_stats_report(run_dirs: Iterable[str | Path], out_dir: str | Path, *, level: float = 0.95,
                       alpha: float = NOISE_ALPHA) -> dict[str, Path]:
    """The sweep report: ``runs.csv``, ``summary.csv``/``summary.md`` (:func:`stats_summary_frame`, notes
    under the table), ``accuracy_vs_time.png`` and ``selector_accuracy.png`` in ``out_dir``, atomically."""
    import matplotlib.pyplot as plt

    found = find_runs(run_dirs)
    out = check_report_folder(out_dir, found)
    runs = [load_run(d) for d in found]
    df, summary = _stats_frames(runs, level=level, alpha=alpha)
    paths = {"runs": out / "runs.csv", "csv": out / "summary.csv", "md": out / "summary.md",
             "png": out / "accuracy_vs_time.png", "selectors_png": out / "selector_accuracy.png"}
    write_text_atomic(paths["runs"], df.to_csv(index=False))
    write_text_atomic(paths["csv"], summary.to_csv(index=False))
    write_text_atomic(paths["md"], stats_markdown_table(summary, alpha=alpha) + "\n" + stats_notes(summary, alpha=alpha)
                      + cost_sections(runs))
    plot_accuracy_vs_time(runs, paths["png"])
    paths.update(write_cost_report(runs, out))
    fig = selector_accuracy_figure(summary)
    write_figure_atomic(fig, paths["selectors_png"], dpi=110)
    plt.close(fig)
    return paths


# ------------------------------------------------------------------------------------------------
# Cost: accuracy against wall-clock and example-passes, matched-cost comparisons, selection that
# does not pay (coreaug.matched_cost, coreaug.train.cost).
# ------------------------------------------------------------------------------------------------

def unpaid_selection_lines(runs: Sequence[dict[str, Any]]) -> list[str]:
    """One line per run whose selection took longer than the training it saved (``selection_pays`` false)."""
    lines = []
    for run in runs:
        r = run["results"]
        if r.get("selection_pays") is False:
            lines.append(f"- {run['dir']}: selection {r.get('selection_time_total', 0.0):.2f}s > "
                         f"~{r.get('selection_saved_s') or 0.0:.2f}s of training saved against the same epochs of "
                         f"{r.get('reference')}")
    return lines


def cost_sections(runs: Sequence[dict[str, Any]]) -> str:
    """Markdown appended to a summary: the matched-cost table and the runs whose selection did not pay."""
    from coreaug.matched_cost import has_cost, matched_cost_frame, matched_cost_markdown

    if not any(has_cost(r) for r in runs):
        return ""
    text = "\n## Accuracy at matched cost\n\n" + matched_cost_markdown(matched_cost_frame(runs))
    unpaid = unpaid_selection_lines(runs)
    if unpaid:
        text += "\n## Selection that did not pay\n\n" + "\n".join(unpaid) + "\n"
    return text


def write_cost_report(runs: Sequence[dict[str, Any]], out: Path) -> dict[str, Path]:
    """``matched_cost.csv`` and ``accuracy_vs_cost.png`` when any run recorded its cost."""
    import matplotlib.pyplot as plt

    from coreaug.matched_cost import accuracy_vs_cost_figure, has_cost, matched_cost_frame

    if not any(has_cost(r) for r in runs):
        return {}
    paths = {"matched_cost_csv": out / "matched_cost.csv", "cost_png": out / "accuracy_vs_cost.png"}
    write_text_atomic(paths["matched_cost_csv"], matched_cost_frame(runs).to_csv(index=False))
    fig = accuracy_vs_cost_figure(runs)
    write_figure_atomic(fig, paths["cost_png"], dpi=110)
    plt.close(fig)
    return paths
