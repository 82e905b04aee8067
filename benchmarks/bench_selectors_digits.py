"""Digits benchmark: every subset selector vs random, regimes (b) and (c), with ``coreaug sweep``'s machinery.

For each model (MLP, small CNN) it runs the grid

    methods   full, full-aug, subset-only (regime b), random+aug-subset (regime c)
    selectors every selector the training config accepts (``--selectors all``), or a list
    fractions 10% and 30% (the CNN: ``--cnn-fractions``, 10% by default to fit the CPU budget)
    seeds     0-4 (``--seeds``; the CNN: ``--cnn-seeds``)

with the digits-quick preset and bench_train_digits.py's schedule (15 epochs, step at 11, R = 5,
AutoAugment), one torch thread, into ``--runs/<model>/`` (completed runs are kept and skipped on a
rerun, interrupted ones resumed). Then the sweep report over both models: final accuracy mean ± std
and mean ± 95% Student-t CI over seeds, Welch's two-sided t-test of each selector against ``random``
at the same regime and size ('within noise' = p ≥ 0.05), training + selection wall-clock, selection
share, speed-up vs full-aug measured in this process, and peak memory per configuration (largest
over seeds; peak RSS above the level before the run, ``_memory.RssHighWater``).

    python benchmarks/bench_selectors_digits.py                       # the full benchmark (~35 min, 2 cores)
    python benchmarks/bench_selectors_digits.py --selectors coreset,random,maxloss --seeds 0-1   # a quick look

Writes ``selectors_digits.{md,csv,png,json}`` under ``--results``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from coreaug.io import write_text_atomic
from coreaug.report import GROUP_KEYS, NOISE_ALPHA, format_p, write_stats_report
from coreaug.sweep import build_grid, known_selectors, plan_sweep, run_sweep

from _memory import RssHighWater

HERE = Path(__file__).resolve().parent
SCHEDULE = {"epochs": 15, "milestones": [11], "reselect_every": 5, "strong_aug": "autoaugment", "device": "cpu",
            "diagnostics_every": 0}  # diagnostics off: this benchmark measures selectors (hash-neutral key)


def _memory_train(peaks: dict[str, float | None]):
    """A ``train`` that records each run's peak RSS (MiB) in ``peaks`` and ``peak_mem.json``."""
    from coreaug.train import train

    def run(cfg, out_dir, **kw):
        load = os.getloadavg()
        with RssHighWater() as hw:
            res = train(cfg, out_dir, **kw)
        mib = None if hw.peak is None else round(hw.peak / 2**20, 1)
        peaks[str(out_dir)] = mib
        write_text_atomic(Path(out_dir) / "peak_mem.json", json.dumps(
            {"peak_mem_mib": mib, "resumed": kw.get("resume", False), "load_average_at_start": load,
             "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
        return res
    return run


def _peak(run_dir: str) -> float | None:
    try:
        return json.loads((Path(run_dir) / "peak_mem.json").read_text(encoding="utf-8"))["peak_mem_mib"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _stamp(run_dir: str) -> str | None:
    """When the run finished (UTC): ``peak_mem.json``'s ``finished_utc``, else results.json's mtime."""
    try:
        stamp = json.loads((Path(run_dir) / "peak_mem.json").read_text(encoding="utf-8")).get("finished_utc")
    except (OSError, ValueError, AttributeError):
        stamp = None
    if stamp is None and (Path(run_dir) / "results.json").is_file():
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((Path(run_dir) / "results.json").stat().st_mtime))
    return stamp


def verdict_lines(summary: pd.DataFrame) -> list[str]:
    """Per model, regime and size: which selectors beat random beyond noise, which are within noise, which lose."""
    lines = []
    sub = summary[~summary["method"].isin(["full", "full-aug"])]
    for (model, method, frac), g in sub.groupby(["model", "method", "fraction"], sort=False):
        if "random" not in set(g["selector"]):
            continue
        rnd = g[g["selector"] == "random"].iloc[0]
        groups = {v: [f"{r.selector} ({100 * r.vs_random_diff:+.2f} pts, {format_p(r.vs_random_p)})"
                      for r in g.itertuples() if r.vs_random == v] for v in ("better", "within noise", "worse")}
        na = [r.selector for r in g.itertuples() if r.vs_random == "n/a"]
        lines.append(
            f"{model}, {method}, {100 * frac:.0f}% (random {100 * rnd.acc_mean:.2f} ± {100 * rnd.acc_ci:.2f}): "
            f"beat random beyond noise: {', '.join(groups['better']) or 'none'}; "
            f"within noise: {', '.join(groups['within noise']) or 'none'}; "
            f"worse than random beyond noise: {', '.join(groups['worse']) or 'none'}"
            + (f"; untested (one seed): {', '.join(na)}" if na else ""))
    return lines


def pivot_markdown(summary: pd.DataFrame) -> str:
    """Compact table: one row per selector, one column per (model, regime, size); cells "mean ± CI" in %,
    ▲ / ▼ = better / worse than random beyond noise (Welch p < α), no mark = within noise."""
    sub = summary[~summary["method"].isin(["full", "full-aug"])]
    short = {"subset-only": "(b)", "random+aug-subset": "(c)"}
    cols = list(dict.fromkeys(zip(sub["model"], sub["method"], sub["fraction"])))
    selectors = list(dict.fromkeys(sub["selector"]))
    header = ["selector"] + [f"{m} {short.get(meth, meth)} {100 * f:.0f}%" for m, meth, f in cols]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for sel in selectors:
        cells = [sel]
        for m, meth, f in cols:
            r = sub[(sub["model"] == m) & (sub["method"] == meth) & (sub["fraction"] == f) & (sub["selector"] == sel)]
            if not len(r):
                cells.append("–")
                continue
            r = r.iloc[0]
            mark = {"better": " ▲", "worse": " ▼"}.get(r["vs_random"], "")
            ci = "–" if pd.isna(r["acc_ci"]) else f"{100 * r['acc_ci']:.1f}"
            cells.append(f"{100 * r['acc_mean']:.1f} ± {ci}{mark}" + ("" if int(r["seeds"]) >= 5 else f" (n={int(r['seeds'])})"))
        lines.append("| " + " | ".join(cells) + " |")
    refs = summary[summary["method"].isin(["full", "full-aug"])]
    for r in refs.itertuples():
        lines.append(f"| {r.method} ({r.model}, 100%) | " + " | ".join(
            (f"{100 * r.acc_mean:.1f} ± {100 * r.acc_ci:.1f}" if m == r.model else "") for m, _, _ in cols) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default=str(HERE.parent / "runs" / "bench_selectors_digits"),
                   help="where the run folders go (git-ignored)")
    p.add_argument("--results", default=str(HERE / "results"), help="where selectors_digits.* go")
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument("--selectors", default="all", help="comma-separated, or 'all' (every registered selector)")
    p.add_argument("--seeds", default="0-4")
    p.add_argument("--fractions", default="0.1,0.3")
    p.add_argument("--cnn-seeds", default=None, help="seeds for the CNN (default: --seeds)")
    p.add_argument("--cnn-fractions", default="0.1", help="fractions for the CNN (default 0.1 to fit the budget)")
    p.add_argument("--methods", default="full,full-aug,subset-only,random+aug-subset")
    p.add_argument("--cnn-methods", default="full-aug,subset-only,random+aug-subset", help="methods for the CNN")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-minutes", type=float, default=None,
                   help="start no run after this many minutes (the rest is listed as not started)")
    p.add_argument("--fresh", action="store_true", help="delete earlier runs under --runs first")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    runs = Path(args.runs)
    if args.fresh and runs.exists():
        shutil.rmtree(runs)
    t0 = time.perf_counter()
    deadline = None if args.max_minutes is None else t0 + 60 * args.max_minutes
    load_before = os.getloadavg()
    peaks: dict[str, float | None] = {}
    grids, completed, failed, not_started = {}, [], [], []
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        cnn = model == "cnn"
        spec = build_grid(preset="digits-quick", methods=args.cnn_methods if cnn else args.methods,
                          selectors=args.selectors,
                          fractions=args.cnn_fractions if cnn else args.fractions,
                          seeds=(args.cnn_seeds or args.seeds) if cnn else args.seeds,
                          overrides={**SCHEDULE, "model": model, "threads": args.threads})
        # fraction-major: every selector at the first fraction (10%, with the references) over all seeds
        # before the next fraction, so a run cut short by --max-minutes still answers the 10% question
        planned = sorted(plan_sweep(spec, runs / model),
                         key=lambda p: (0 if p.point.fraction is None else spec.fractions.index(p.point.fraction),
                                        p.point.seed))
        grids[model] = {"methods": spec.methods, "selectors": spec.selectors, "fractions": spec.fractions,
                        "seeds": spec.seeds, "runs": len(planned),
                        "reused": sum(p.action == "skip" for p in planned)}
        print(f"== {model}: {len(planned)} runs ({sum(p.action == 'skip' for p in planned)} done earlier)", flush=True)
        out = run_sweep(planned, log=lambda s: print(f"{model} {s}", flush=True), train_fn=_memory_train(peaks),
                        deadline=deadline)
        completed += out.completed_dirs
        failed += [f"{model}/{n}" for n in out.failed]
        not_started += [f"{model}/{n}" for n, st in out.status.items() if st == "not started"]
    total = time.perf_counter() - t0

    paths = write_stats_report(completed, runs / "report")
    summary = pd.read_csv(paths["csv"], keep_default_na=False, na_values=[""])
    runs_df = pd.read_csv(paths["runs"])
    runs_df["peak_mem_mib"] = [_peak(d) for d in runs_df["run"]]
    peak = runs_df.groupby(list(GROUP_KEYS), dropna=False, sort=False)["peak_mem_mib"].max().reset_index()
    summary = summary.merge(peak, on=list(GROUP_KEYS), how="left", validate="one_to_one")
    stamps = sorted(t for t in (_stamp(d) for d in runs_df["run"]) if t)
    window = (stamps[0], stamps[-1]) if stamps else ("?", "?")
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(results / "selectors_digits.csv", summary.to_csv(index=False))
    shutil.copyfile(paths["selectors_png"], results / "selectors_digits.png")
    lines = verdict_lines(summary)
    load_after = os.getloadavg()
    settings = {"preset": "digits-quick", **SCHEDULE, "threads": args.threads, "grids": grids,
                "known_selectors": list(known_selectors())}
    md = ("## Every selector vs random on digits: final accuracy (%), mean ± 95% CI over seeds\n\n"
          "▲ / ▼ = better / worse than `random` at the same regime and size beyond noise (Welch's two-sided "
          f"t-test, p < {NOISE_ALPHA:g}); no mark = within noise; (n=k) = fewer than 5 seeds. (b) = subset-only, "
          "(c) = random+aug-subset.\n\n" + pivot_markdown(summary) + "\n## Full table\n\n"
          + paths["md"].read_text(encoding="utf-8"))
    md += "\n### Against random (Welch's two-sided t-test over seeds, α = %g)\n\n" % NOISE_ALPHA
    md += "\n".join(f"- {line}" for line in lines) + "\n"
    md += (f"\n### What was run\n\n"
           + "\n".join(f"- {m}: methods {', '.join(g['methods'])}; selectors {', '.join(g['selectors'])}; "
                       f"fractions {', '.join(f'{f:g}' for f in g['fractions'])}; seeds "
                       f"{', '.join(map(str, g['seeds']))}; {g['runs']} runs, of which {g['reused']} were completed by an "
                       "earlier invocation and reused (same configuration)" for m, g in grids.items())
           + f"\n- runs finished between {window[0]} and {window[1]} (UTC; `finished_utc` and the load average at each "
             "run's start are in its `peak_mem.json`): times of reused runs were measured under a different load than "
             "those run in this invocation."
           + f"\n- schedule: digits-quick preset (batch 32, lr 0.05, SGD momentum 0.9, wd 1e-4, AutoAugment-ImageNet "
             f"strong copies, equal-ceil per-class budgets, bias proxy) with {json.dumps(SCHEDULE)}; "
             f"{args.threads} torch thread(s), one run at a time, in one process.\n"
           + f"- total {total:.0f}s on {platform.node()} ({os.cpu_count()} cores, torch {torch.__version__}); load "
             f"average (1/5/15 min) at start {tuple(round(v, 2) for v in load_before)}, at end "
             f"{tuple(round(v, 2) for v in load_after)}: other jobs shared the cores, so times are noisy; compare "
             "speed-ups (same process) rather than seconds.\n"
           + f"- peak memory (MiB, peak RSS above the level before the run, largest over seeds) per configuration: "
             f"in selectors_digits.csv (`peak_mem_mib`); largest overall "
             f"{runs_df['peak_mem_mib'].max() if runs_df['peak_mem_mib'].notna().any() else '–'} MiB.\n")
    if failed:
        md += f"- FAILED runs ({len(failed)}): {', '.join(failed)}\n"
    if not_started:
        md += f"- not started (time budget --max-minutes {args.max_minutes:g}): {len(not_started)} runs\n"
    write_text_atomic(results / "selectors_digits.md", md)
    meta = {"command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
            "settings": settings, "total_seconds": total, "failed": failed, "not_started": not_started,
            "load_average_1_5_15min": {"start": load_before, "end": load_after}, "torch": torch.__version__,
            "host": platform.node(), "comparisons": lines}
    write_text_atomic(results / "selectors_digits.json", json.dumps(meta, indent=2) + "\n")
    print(md)
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
