"""Per-run rows and the per-configuration summary over seeds (mean ± std, speed-up vs ``full-aug``), as a frame and as Markdown."""

from __future__ import annotations

import math
from typing import Any, Sequence

import pandas as pd

GROUP_KEYS: tuple[str, ...] = ("dataset", "model", "epochs", "label_noise", "method", "pruning", "selector",
                               "fraction")
BASELINE_KEYS: tuple[str, ...] = ("dataset", "model", "epochs", "label_noise")


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
