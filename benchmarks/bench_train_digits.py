"""Digits benchmark: augmented coresets vs augmented random / max-loss subsets vs full augmentation.

Runs, on the embedded digits data with 3 seeds: ``full``, ``full-aug``, and regimes (b)
``subset-only`` and (c) ``random+aug-subset`` with the ``coreset``, ``random`` and ``maxloss``
selectors at 10% and 30% subsets; then builds the report table (accuracy mean ± std over seeds,
training wall-clock, speed-up vs ``full-aug`` measured in the same process on the same machine) and
prints, for each regime and size, the coreset's accuracy gap to the random and max-loss subsets.

Paper expectation (docs/paper-notes.md §4): augmented coresets beat augmented random subsets of the same size
and train faster than full augmentation. The script reports what it measures, whatever it shows.

    python benchmarks/bench_train_digits.py                      # ~10 min on 2 CPU cores
    python benchmarks/bench_train_digits.py --seeds 0 --epochs 5 # a quick look

Peak memory per run: peak RSS above the level before the run, from the kernel's high-water mark
(``_memory.RssHighWater``: no sampler thread, so it does not perturb the timed run), saved as
``peak_mem.json`` in the run folder; the table and CSV get ``peak_mem_mib`` = the largest over the
seeds that recorded it (empty / "–" where none did: runs made before it was recorded, or a kernel
that cannot reset the mark). The first run in a process also carries one-off costs (lazy imports,
first data load), so it reads higher than the same configuration later on.

Writes the runs under ``--runs`` and ``train_digits.{md,csv,png,json}`` under ``--results``.
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
from coreaug.report import GROUP_KEYS, write_report
from coreaug.train import resolve_config, train

from _memory import RssHighWater

HERE = Path(__file__).resolve().parent

# Small MLP on 8×8 digits, SGD as in the paper (momentum 0.9, wd 1e-4), one step decay.
BASE = {
    "dataset": "digits", "model": "mlp", "batch_size": 32, "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4,
    "weak_aug": "none", "device": "cpu", "per_class": "equal-ceil", "proxy": "bias",
}


def configs(args: argparse.Namespace) -> list[tuple[str, dict]]:
    """(run name, overrides) for every configuration of one seed."""
    out = [("full", {"method": "full"}), ("full-aug", {"method": "full-aug"})]
    for regime in args.regimes:
        for frac in args.fractions:
            for sel in args.selectors:
                out.append((f"{regime}_{sel}_{int(round(100 * frac))}",
                            {"method": regime, "selector": sel, "fraction": frac}))
    return out


def _peak_mem_mib(run_dir: Path) -> float | None:
    try:
        return json.loads((run_dir / "peak_mem.json").read_text(encoding="utf-8"))["peak_mem_mib"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def add_peak_memory(summary_csv: Path, runs_csv: Path, md: Path) -> None:
    """Add ``peak_mem_mib`` (largest over a configuration's seeds) to the report's CSV and Markdown table."""
    runs = pd.read_csv(runs_csv)
    runs["peak_mem_mib"] = [_peak_mem_mib(Path(d)) for d in runs["run"]]
    keys = list(GROUP_KEYS)
    peak = runs.groupby(keys, dropna=False, sort=False)["peak_mem_mib"].max().reset_index()
    s = pd.read_csv(summary_csv)
    s = s.merge(peak, on=keys, how="left", validate="one_to_one")
    write_text_atomic(summary_csv, s.to_csv(index=False))
    lines = md.read_text(encoding="utf-8").splitlines()
    if len(lines) != 2 + len(s):
        raise RuntimeError(f"{md}: {len(lines) - 2} table rows for {len(s)} summary rows")
    lines[0] += " peak mem (MiB) |"
    lines[1] += "---|"
    for i, v in enumerate(s["peak_mem_mib"], 2):
        lines[i] += " – |" if pd.isna(v) else f" {v:.1f} |"
    write_text_atomic(md, "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default=str(HERE.parent / "runs" / "bench_train_digits"),
                   help="where the run folders go (git-ignored)")
    p.add_argument("--results", default=str(HERE / "results"), help="where train_digits.* go")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--milestones", type=int, nargs="*", default=None, help="default: at 3/4 of the epochs")
    p.add_argument("--model", default="mlp")
    p.add_argument("--strong-aug", default="autoaugment")
    p.add_argument("--reselect-every", type=int, default=5)
    p.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.3])
    p.add_argument("--regimes", nargs="+", default=["subset-only", "random+aug-subset"])
    p.add_argument("--selectors", nargs="+", default=["coreset", "random", "maxloss"])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 avoids thrashing on shared cores)")
    p.add_argument("--fresh", action="store_true", help="delete earlier runs under --runs first")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    runs = Path(args.runs)
    if args.fresh and runs.exists():
        shutil.rmtree(runs)
    milestones = args.milestones if args.milestones is not None else [max(1, (3 * args.epochs) // 4)]
    common = {**BASE, "model": args.model, "epochs": args.epochs, "milestones": milestones,
              "strong_aug": args.strong_aug, "reselect_every": args.reselect_every}
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    todo = [(seed, name, kw) for seed in args.seeds for name, kw in configs(args)]
    for i, (seed, name, kw) in enumerate(todo, 1):
        d = runs / f"{name}_s{seed}"
        if (d / "results.json").is_file():
            print(f"[{i}/{len(todo)}] {d.name}: done earlier, kept", flush=True)
            continue
        cfg = resolve_config(None, None, {**common, **kw, "seed": seed})
        resumed = (d / "checkpoint.pt").is_file()
        with RssHighWater() as hw:
            res = train(cfg, d, resume=resumed, quiet=True)
        mib = None if hw.peak is None else round(hw.peak / 2**20, 1)
        write_text_atomic(d / "peak_mem.json", json.dumps(
            {"peak_mem_mib": mib, "resumed": resumed,
             "measure": "peak RSS above the level before train() (VmHWM, reset via /proc/self/clear_refs)"}) + "\n")
        print(f"[{i}/{len(todo)}] {d.name}: acc {res['final_test_acc']:.4f}, time {res['wall_clock_total']:.1f}s "
              f"(selection {res['selection_time_total']:.1f}s), peak {'-' if mib is None else mib} MiB, "
              f"elapsed {time.perf_counter() - t0:.0f}s", flush=True)

    paths = write_report([runs / f"{name}_s{seed}" for seed, name, _ in todo], runs / "report")
    add_peak_memory(paths["csv"], paths["runs"], paths["md"])
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    for key, ext in (("md", "md"), ("csv", "csv"), ("png", "png")):
        shutil.copyfile(paths[key], results / f"train_digits.{ext}")
    table = paths["md"].read_text(encoding="utf-8")
    print(table)

    s = pd.read_csv(paths["csv"])
    lines = []
    for regime in args.regimes:
        for frac in args.fractions:
            g = s[(s.method == regime) & (s.fraction.round(6) == round(frac, 6))].set_index("selector")
            if "coreset" not in g.index:
                continue
            c = g.loc["coreset"]
            parts = [f"{regime} {100 * frac:.0f}%: coreset {100 * c.acc_mean:.2f}%"]
            for other in ("random", "maxloss"):
                if other in g.index:
                    parts.append(f"vs {other} {100 * (c.acc_mean - g.loc[other].acc_mean):+.2f} pts")
            parts.append(f"speed-up vs full-aug {c.speedup_vs_full_aug:.2f}x")
            lines.append(", ".join(parts))
    fa = s[s.method == "full-aug"]
    fu = s[s.method == "full"]
    if len(fa) and len(fu):
        lines.append(f"full-aug {100 * fa.acc_mean.iloc[0]:.2f}% vs full (no strong aug) {100 * fu.acc_mean.iloc[0]:.2f}%")
    print("\n".join(lines))
    meta = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "settings": {**common, "seeds": args.seeds, "fractions": args.fractions, "regimes": args.regimes,
                     "selectors": args.selectors, "threads": args.threads},
        "total_seconds": time.perf_counter() - t0, "host": platform.node(), "cpu_threads": args.threads,
        "torch": torch.__version__, "comparisons": lines,
        "load_average_1_5_15min": {"start": load_before, "end": os.getloadavg()},
    }
    (results / "train_digits.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    with open(results / "train_digits.md", "a", encoding="utf-8") as fh:
        fh.write("\n" + "\n".join(f"- {line}" for line in lines) + "\n")
        fh.write(f"\nSettings: {json.dumps(meta['settings'])}; total {meta['total_seconds']:.0f}s "
                 f"(threads={args.threads}, torch {torch.__version__}). Time = training + selection wall-clock, "
                 "evaluation excluded; accuracy = final-epoch test accuracy, mean ± sample std over seeds; "
                 "peak mem = peak RSS above the level before the run (kernel high-water mark), largest over seeds. "
                 f"Load average (1/5/15 min) at start {load_before}, at end {os.getloadavg()} on "
                 f"{os.cpu_count()} cores: with other jobs on the machine the times are noisy.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
