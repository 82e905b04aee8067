"""Figure 6: the theory's quantities *during* training, from the runs' spectral diagnostics.

Three quick ``digits-quick`` runs (small CNN, 12 epochs, AutoAugment, seed 0) with diagnostics after
every epoch (``diagnostics_every=1``, 256-example probe, classifier Jacobian;
:mod:`coreaug.train.diagnostics`): ``full-aug`` and regime (b) ``subset-only`` with a 30% coreset and
a 30% random subset. The plot is :func:`coreaug.report.diagnostics_figure`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from coreaug.runfolder import DIAGNOSTICS_CSV, RunFolder

#: (run name, overrides of the digits-quick preset)
DIAGNOSTIC_RUNS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("full-aug", {"method": "full-aug"}),
    ("subset-only_coreset_30", {"method": "subset-only", "selector": "coreset", "fraction": 0.3}),
    ("subset-only_random_30", {"method": "subset-only", "selector": "random", "fraction": 0.3}),
)
DIAGNOSTIC_BASE: dict[str, Any] = {"diagnostics_every": 1, "seed": 0}


def diagnostic_runs(root: Path, *, quiet: bool = True) -> list[Path]:
    """Train the :data:`DIAGNOSTIC_RUNS` into ``root/<name>`` (finished runs are reused)."""
    from coreaug.train import resolve_config, train

    dirs = []
    for name, over in DIAGNOSTIC_RUNS:
        run_dir = root / name
        folder = RunFolder(run_dir)
        if not folder.results_path.is_file() or not folder.file(DIAGNOSTICS_CSV).is_file():
            if run_dir.exists():
                shutil.rmtree(run_dir)
            train(resolve_config("digits-quick", None, {**DIAGNOSTIC_BASE, **over}), run_dir, quiet=quiet)
        dirs.append(run_dir)
    return dirs


def diagnostics_summary(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per run: first/last condition number, mean shifts, mean ξ (selector vs random), time ratios."""
    out: dict[str, Any] = {}
    for run in runs:
        d, r = run["diagnostics"], run["results"]
        if d.empty:
            continue

        def mean(c: str) -> float | None:
            v = pd.to_numeric(d[c], errors="coerce").dropna() if c in d else pd.Series(dtype=float)
            return float(v.mean()) if len(v) else None

        out[Path(run["dir"]).name] = {
            "method": r.get("method"), "selector": r.get("selector"), "fraction": r.get("fraction"),
            "final_test_acc": r.get("final_test_acc"), "epochs_diagnosed": d["epoch"].tolist(),
            "cond_first": float(d["cond"].iloc[0]), "cond_last": float(d["cond"].iloc[-1]),
            "shift_bottom10_mean": mean("shift_bottom10"), "shift_top10_mean": mean("shift_top10"),
            "angle_max_deg_mean": mean("angle_max_deg"),
            "xi_subset_clean_mean": mean("xi_subset_clean"), "xi_random_clean_mean": mean("xi_random_clean"),
            "xi_subset_aug_mean": mean("xi_subset_aug"), "xi_random_aug_mean": mean("xi_random_aug"),
            "diagnostics_time_total": r.get("diagnostics_time_total"), "train_time_total": r.get("train_time_total"),
            "diagnostics_over_train": (r.get("diagnostics_time_total") or 0.0) / max(r.get("train_time_total") or 1e-12, 1e-12),
        }
    return out
