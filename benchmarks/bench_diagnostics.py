"""Cost of the spectral diagnostics during training (issue 11): same-run ratio on ``digits-quick``.

For each configuration the run's own ``diagnostics_time_total`` is divided by its own
``train_time_total`` (and by training + selection, the speed-up inputs) — a ratio measured in the same
process, so machine load affects numerator and denominator alike. The budget is ≤ 15% of the training
time with the default settings (K = 4, N = 256 probe examples, classifier Jacobian). A reference run
with diagnostics off checks that the diagnostics do not change the training (identical final loss and
accuracy) and gives its training time for comparison.

    python benchmarks/bench_diagnostics.py              # ~1.5 min on 2 CPU cores
    python benchmarks/bench_diagnostics.py --no-all     # skip the all-parameters variant
    python benchmarks/bench_diagnostics.py --methods subset-only full-aug

Writes ``benchmarks/results/diagnostics.{md,json}`` (with the diagnostics table of the default run).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from coreaug.io import write_json_atomic, write_text_atomic
from coreaug.train import resolve_config, train

from _memory import RssHighWater

HERE = Path(__file__).resolve().parent
SHOW = ["epoch", "sv_top1", "sv_bottom1", "rank", "cond", "eff_rank", "shift_bottom10", "shift_top10",
        "angle_max_deg", "subset_size", "xi_subset_clean", "xi_random_clean", "xi_subset_aug", "xi_random_aug", "time"]


def markdown(df: pd.DataFrame, fmt: str) -> str:
    """A Markdown table (no tabulate dependency); floats with ``fmt``, missing values as –."""
    def cell(v) -> str:
        if v is None or (isinstance(v, float) and v != v):
            return "–"
        return format(v, fmt) if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def run_one(name: str, overrides: dict, root: Path) -> dict:
    cfg = resolve_config("digits-quick", overrides=overrides)
    out = root / name
    t0 = time.perf_counter()
    with RssHighWater() as mem:
        res = train(cfg, out, quiet=True)
    total = time.perf_counter() - t0
    diag = res["diagnostics_time_total"]
    row = {
        "run": name, "method": cfg.method, "diagnostics_every": cfg.diagnostics_every,
        "probe": cfg.diagnostics_probe, "params": cfg.diagnostics_params, "epochs": cfg.epochs,
        "train_time": res["train_time_total"], "selection_time": res["selection_time_total"],
        "diagnostics_time": diag, "n_diagnostics": len(pd.read_csv(out / "diagnostics.csv")) if diag else 0,
        "ratio_vs_train": diag / res["train_time_total"],
        "ratio_vs_train_selection": diag / res["wall_clock_total"],
        "total_time": total, "final_train_loss": res["final_train_loss"], "final_test_acc": res["final_test_acc"],
        "peak_rss_mib": None if mem.peak is None else mem.peak / 2**20,
    }
    print(f"{name:28s} train {row['train_time']:6.2f}s  selection {row['selection_time']:5.2f}s  diagnostics "
          f"{diag:5.2f}s ({row['n_diagnostics']} x)  -> {100 * row['ratio_vs_train']:5.1f}% of training, "
          f"{100 * row['ratio_vs_train_selection']:5.1f}% of training+selection", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["subset-only"], help="methods to measure (digits-quick preset)")
    ap.add_argument("--no-all", action="store_true", help="skip the all-parameters variant")
    ap.add_argument("--results", default=str(HERE / "results"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="bench_diag_"))
    rows = []
    try:
        for method in args.methods:
            ref = run_one(f"{method}_off", {"method": method, "diagnostics_every": 0}, root)
            rows.append(ref)
            rows.append(run_one(f"{method}_default", {"method": method}, root))
            same = (rows[-1]["final_train_loss"] == ref["final_train_loss"]
                    and rows[-1]["final_test_acc"] == ref["final_test_acc"])
            rows[-1]["same_training_as_off"] = same
            if not same:
                print("WARNING: the run with diagnostics trained differently from the run without")
            if method == args.methods[0]:
                table = pd.read_csv(root / f"{method}_default" / "diagnostics.csv")[SHOW]
            if not args.no_all and method == args.methods[0]:
                rows.append(run_one(f"{method}_all_params", {"method": method, "diagnostics_params": "all"}, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()
    df = pd.DataFrame(rows)
    meta = {"threads": torch.get_num_threads(), "loadavg_before": load_before, "loadavg_after": load_after,
            "host": platform.node(), "torch": torch.__version__, "cpu_count": os.cpu_count()}
    out = Path(args.results)
    cols = ["run", "params", "n_diagnostics", "train_time", "selection_time", "diagnostics_time", "ratio_vs_train",
            "ratio_vs_train_selection", "final_test_acc", "peak_rss_mib"]
    md = [
        "# Spectral diagnostics: overhead on digits-quick (same-run ratios)",
        "",
        f"threads {meta['threads']}, load average before {tuple(round(v, 2) for v in load_before)}, after "
        f"{tuple(round(v, 2) for v in load_after)} ({meta['cpu_count']} CPUs, shared). Budget: ≤ 15% of training time "
        "with the default settings (K = 4, N = 256, classifier Jacobian).",
        "",
        markdown(df[cols], ".3f"),
        "",
        "Diagnostics table of the default run (`diagnostics.csv`, a subset of its columns):",
        "",
        markdown(table, ".4g"),
        "",
    ]
    write_text_atomic(out / "diagnostics.md", "\n".join(md))
    write_json_atomic(out / "diagnostics.json", {"meta": meta, "runs": rows, "default_run_table": table.to_dict(orient="records")})
    print("\n".join(md))


if __name__ == "__main__":
    main()
