"""Statistics over seeds for sweeps: 95% t confidence intervals, Welch's test of every selector against ``random``
at the same method and fraction, selection share, the paper column."""

from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd

from coreaug.report.tables import GROUP_KEYS, method_cell, runs_frame, summary_frame

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
