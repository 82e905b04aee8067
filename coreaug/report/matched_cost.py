"""Accuracy against cost: methods compared at equal cost, not only at equal subset size.

Cost is measured two ways per run (coreaug.train.cost): wall-clock of training plus selection
(``wall_clock``, the speed-up input; evaluation and diagnostics excluded) and example-passes
(training forwards + backwards + the proxy pass's forwards). Every run is a point; each method's
runs have a Pareto front (no other run of the method is both cheaper and more accurate).

"Accuracy at matched cost" asks what a reference had reached when it had spent the same: the
reference's learning curve (its per-epoch test accuracy against its cumulative cost, averaged over
seeds epoch by epoch) is interpolated at the method's mean final cost. References: ``full-aug``,
and the best ``random`` configuration at that cost (the strongest random baseline). Where the
method cost more than the reference ever spent, the reference's final accuracy is used and the
cell is marked ``>`` (the reference stopped earlier).

All functions take runs as loaded by :func:`coreaug.report.runs.load_run` (``results`` dict and the
``metrics`` DataFrame).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["COSTS", "method_label", "cost_frame", "run_curve", "pareto_front", "matched_cost_frame",
           "matched_cost_markdown", "accuracy_vs_cost_figure", "has_cost"]

#: cost name → (per-run total in results.json, how the per-epoch curve is built, axis label)
COSTS: dict[str, tuple[str, str]] = {
    "wall": ("wall_clock_total", "train + selection wall-clock (s)"),
    "passes": ("example_passes_total", "example-passes (fwd + bwd + proxy fwd)"),
}


def has_cost(run: dict[str, Any]) -> bool:
    """Whether the run recorded example-passes (runs made before cost accounting did not)."""
    return run["results"].get("example_passes_total") is not None


def method_label(results: dict[str, Any], config: dict[str, Any] | None = None) -> str:
    """``method[ selector f%][ + pruning setting]``, e.g. ``full-aug + infobatch r=0.5``."""
    from coreaug.report.plots import run_label
    from coreaug.report.tables import pruning_label

    label = run_label({"results": results})
    pruning = pruning_label(config or {})
    return label if pruning == "-" else f"{label} + {pruning}"


def cost_frame(runs: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per run: label, seed, final accuracy and both costs."""
    rows = []
    for run in runs:
        r = run["results"]
        rows.append({"run": run["dir"], "label": method_label(r, run.get("config")), "seed": r.get("seed"),
                     "acc": r.get("final_test_acc"), "wall": r.get("wall_clock_total"),
                     "passes": r.get("example_passes_total"), "selection_pays": r.get("selection_pays")})
    return pd.DataFrame(rows)


def run_curve(run: dict[str, Any], cost: str) -> tuple[np.ndarray, np.ndarray]:
    """``(cumulative cost, test accuracy)`` after each epoch of one run."""
    m = run["metrics"]
    if cost == "wall":
        c = m["wall_clock"].to_numpy(float)
    else:
        parts = [m[k].fillna(0).to_numpy(float) if k in m else np.zeros(len(m)) for k in
                 ("fwd_train", "bwd_train", "fwd_proxy")]
        c = np.cumsum(sum(parts))
    return c, m["test_acc"].to_numpy(float)


def _mean_curve(runs: Sequence[dict[str, Any]], cost: str) -> tuple[np.ndarray, np.ndarray]:
    """Epoch-by-epoch mean over seeds (up to the shortest run)."""
    curves = [run_curve(r, cost) for r in runs]
    k = min(len(c) for c, _ in curves)
    return (np.mean([c[:k] for c, _ in curves], axis=0), np.mean([a[:k] for _, a in curves], axis=0))


def _at_cost(curve: tuple[np.ndarray, np.ndarray], c: float) -> tuple[float, bool]:
    """Accuracy of a mean curve at cost ``c`` (linear between epochs; 0 → the first epoch's);
    second value: whether ``c`` lies beyond the curve (the reference stopped earlier)."""
    costs, accs = curve
    if c >= costs[-1]:
        return float(accs[-1]), c > costs[-1] * 1.0001
    return float(np.interp(c, np.concatenate([[0.0], costs]), np.concatenate([[accs[0]], accs]))), False


def pareto_front(cost: Sequence[float], acc: Sequence[float]) -> list[int]:
    """Positions of the non-dominated points (lower cost, higher accuracy), by increasing cost."""
    order = sorted(range(len(cost)), key=lambda i: (cost[i], -acc[i]))
    front, best = [], -np.inf
    for i in order:
        if acc[i] > best:
            front.append(i)
            best = acc[i]
    return front


def matched_cost_frame(runs: Sequence[dict[str, Any]], *, level: float = 0.95) -> pd.DataFrame:
    """Per method label: accuracy mean ± CI, mean costs, and the references' accuracy at the same cost."""
    from coreaug.report.stats import t_interval

    runs = [r for r in runs if has_cost(r)]
    df = cost_frame(runs)
    if df.empty:
        return df
    by_label = {lab: [r for r, l in zip(runs, df["label"]) if l == lab] for lab in dict.fromkeys(df["label"])}
    refs = {"full-aug": [lab for lab in by_label if lab == "full-aug"],
            "random": [lab for lab in by_label if " random " in f" {lab} "]}
    rows = []
    for lab, group in by_label.items():
        part = df[df["label"] == lab]
        mean, half = t_interval(part["acc"].tolist(), level)
        row: dict[str, Any] = {"label": lab, "seeds": len(part), "acc_mean": mean, "acc_ci": half,
                               "wall": part["wall"].mean(), "passes": part["passes"].mean()}
        for cost in COSTS:
            for ref, labels in refs.items():
                key = f"{ref}_acc_at_{cost}"
                cands = [(lab2, _at_cost(_mean_curve(by_label[lab2], cost), row[cost])) for lab2 in labels
                         if lab2 != lab]
                if not cands:
                    row[key], row[key + "_beyond"], row[key + "_ref"] = None, None, None
                    continue
                ref_lab, (acc, beyond) = max(cands, key=lambda t: t[1][0])
                row[key], row[key + "_beyond"], row[key + "_ref"] = acc, beyond, ref_lab
        rows.append(row)
    out = pd.DataFrame(rows)
    for cost in COSTS:  # which method means sit on the front of all methods
        front = pareto_front(out[cost].tolist(), out["acc_mean"].tolist())
        out[f"front_{cost}"] = [i in front for i in range(len(out))]
    return out.sort_values("wall").reset_index(drop=True)


def matched_cost_markdown(frame: pd.DataFrame) -> str:
    """The matched-cost table as markdown (accuracies in %, ``*`` = on the Pareto front of method means)."""
    if frame.empty:
        return "No run recorded its cost (runs made before cost accounting).\n"

    def acc(v: Any, beyond: Any = False) -> str:
        return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{'>' if beyond else ''}{100 * v:.1f}"

    lines = ["| method | seeds | accuracy % (± 95% CI) | wall s | example-passes | full-aug at same wall | "
             "best random at same wall | full-aug at same passes | best random at same passes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for _, r in frame.iterrows():
        star = " *" if r["front_wall"] else ""
        lines.append(
            f"| {r['label']}{star} | {r['seeds']} | {100 * r['acc_mean']:.1f} ± {acc(r['acc_ci'])} | "
            f"{r['wall']:.2f} | {r['passes']:.3g} | "
            f"{acc(r['full-aug_acc_at_wall'], r['full-aug_acc_at_wall_beyond'])} | "
            f"{acc(r['random_acc_at_wall'], r['random_acc_at_wall_beyond'])} | "
            f"{acc(r['full-aug_acc_at_passes'], r['full-aug_acc_at_passes_beyond'])} | "
            f"{acc(r['random_acc_at_passes'], r['random_acc_at_passes_beyond'])} |")
    lines.append("")
    lines.append("`*`: on the Pareto front of the methods' means by wall-clock (no method is both faster and more "
                 "accurate). A reference column is the reference's accuracy when it had spent the same cost "
                 "(its mean learning curve, interpolated); `>`: the method cost more than the reference ever spent.")
    return "\n".join(lines) + "\n"


def accuracy_vs_cost_figure(runs: Sequence[dict[str, Any]]):
    """Two panels (wall-clock, example-passes): one point per run, each method's Pareto front as a line."""
    import matplotlib.pyplot as plt

    runs = [r for r in runs if has_cost(r)]
    df = cost_frame(runs)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    colours = plt.get_cmap("tab20")
    for k, lab in enumerate(dict.fromkeys(df["label"])):
        part = df[df["label"] == lab].reset_index(drop=True)
        for ax, cost in zip(axes, COSTS):
            ax.scatter(part[cost], 100 * part["acc"], color=colours(k % 20), s=22, alpha=0.8, label=lab)
            front = pareto_front(part[cost].tolist(), part["acc"].tolist())
            ax.plot(part[cost][front], 100 * part["acc"][front], color=colours(k % 20), lw=1.2)
    from matplotlib.ticker import NullFormatter

    for ax, (cost, (_, xlabel)) in zip(axes, COSTS.items()):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor log labels overlap on short ranges
        ax.set_xlabel(xlabel)
        ax.set_ylabel("final test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="lower right", ncol=1)
    fig.suptitle("accuracy against cost: one point per run, lines = each method's Pareto front")
    fig.tight_layout()
    return fig
