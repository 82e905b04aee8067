"""MNIST-1D in a user's own loop: full data, full augmentation, 10% / 30% augmented coresets vs random subsets.

The data, model, strong augmentation and the plain PyTorch loop on ``coreaug.AugmentedCoreset`` are
the code cells tagged ``example`` of ``notebooks/04_your_own_loop.ipynb`` (loaded by
``_mnist1d.load_example``); this script runs every setting of its ``SETTINGS`` for ``--seeds`` seeds
(seed-major order, so machine load spreads over all settings) and reports:

* test accuracy after the last epoch: mean ± 95% t-interval over seeds;
* time = training + selection wall-clock (the loop's clock; the per-epoch test evaluation is not
  timed), mean over seeds, and the speed-up = full-aug's mean time / the setting's;
* coreset vs random at the same size: the difference of the mean accuracies and Welch's t-test
  (``scipy.stats.ttest_ind(equal_var=False)``, two-sided);
* the accuracies published by the MNIST-1D authors beside them.

Before timing, one throw-away coreset run warms up the selection (numba compiles the greedy on its
first call in a process, about a second). One torch thread (``--threads``); the load average is
recorded at the start and the end.

    python benchmarks/bench_mnist1d.py                  # 5 seeds x 6 settings x 100 epochs (about 10-15 min)
    python benchmarks/bench_mnist1d.py --seeds 2 --epochs 5 --out-dir /tmp/m1d   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from coreaug.io import csv_text, strict_json_value, write_text_atomic

from _mnist1d import NOTEBOOK, load_example

RUN_FIELDS = ["setting", "regime", "selector", "fraction", "seed", "epochs", "test_acc", "best_test_acc", "seconds",
              "selection_seconds", "examples_per_epoch", "load_1min"]


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, half-width of the two-sided 95% t-interval, sample standard deviation)."""
    from scipy import stats

    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return mean, float("nan"), float("nan")
    sd = statistics.stdev(values)
    return mean, float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n), sd


def welch_p(a: list[float], b: list[float]) -> float:
    from scipy import stats

    if len(a) < 2 or len(b) < 2 or (statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0):
        return float("nan")
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def summarize(runs: list[dict], settings: dict) -> list[dict]:
    rows = []
    by = {name: [r for r in runs if r["setting"] == name] for name in settings}
    base = statistics.fmean(r["seconds"] for r in by["full-aug"]) if by.get("full-aug") else float("nan")
    for name, rs in by.items():
        if not rs:
            continue
        acc = [r["test_acc"] for r in rs]
        secs = [r["seconds"] for r in rs]
        m, ci, sd = t_interval(acc)
        tm, tci, _ = t_interval(secs)
        row = {"setting": name, "seeds": len(rs), "examples_per_epoch": rs[0]["examples_per_epoch"],
               "acc_mean": m, "acc_ci95": ci, "acc_sd": sd, "seconds_mean": tm, "seconds_ci95": tci,
               "selection_seconds_mean": statistics.fmean(r["selection_seconds"] for r in rs),
               "speedup_vs_full_aug": base / tm, "speedup_per_seed_median": _per_seed_speedup(rs, by.get("full-aug")),
               "vs_random_diff": None, "welch_p": None}
        if name.startswith("coreset "):
            twin = by.get("random " + name[len("coreset "):], [])
            if twin:
                rand = [r["test_acc"] for r in twin]
                row["vs_random_diff"] = m - statistics.fmean(rand)
                row["welch_p"] = welch_p(acc, rand)
        rows.append(row)
    return rows


def _per_seed_speedup(rs: list[dict], full_aug: list[dict] | None) -> float | None:
    """Median over seeds of full-aug's time / this setting's time in the same seed (runs of one seed are
    adjacent in time, so this ratio is less exposed to load drift than the ratio of means)."""
    ref = {r["seed"]: r["seconds"] for r in full_aug or []}
    ratios = [ref[r["seed"]] / r["seconds"] for r in rs if r["seed"] in ref]
    return statistics.median(ratios) if ratios else None


def pct(x: float | None, digits: int = 1) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}"


def markdown(summary: list[dict], ex, args, env: dict, total_s: float) -> str:
    lines = [
        f"# MNIST-1D in a plain PyTorch loop: augmented coresets vs random subsets ({args.seeds} seeds)", "",
        f"The user's data, model, 1-D strong augmentation and loop of `notebooks/04_your_own_loop.ipynb` "
        f"(its `example` cells): MNIST-1D generated offline by `mnist1d.data.make_dataset` with the published "
        f"arguments ({env['n_train']} training signals{'' if env['n_train'] == 4000 else ' of the published 4000'}, "
        f"{env['n_test']} test, length 40), the 1-D CNN `CNN1d`, "
        f"`Strong1d` (shift ±4, time scale ×[1/1.15, 1.15], noise σ 0.1), Adam lr 1e-2 with a cosine schedule, "
        f"batch 64, {args.epochs} epochs, R = 5 (reselect every 5 epochs), `subset-only` regime for the subsets "
        f"(S weighted by γ + one strong copy of each element of S), random subsets = `selector=\"random\"` "
        f"in the same regime. Seeds {env['seeds']}.", "",
        "| setting | examples/epoch | test acc % (mean ± 95% CI) | time s (train + selection, mean ± 95% CI) "
        "| selection s | speed-up vs full-aug (ratio of means / median per seed) | coreset − random (pp) | Welch p |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary:
        diff = "" if r["vs_random_diff"] is None else f"{100 * r['vs_random_diff']:+.1f}"
        p = "" if r["welch_p"] is None else f"{r['welch_p']:.3g}"
        lines.append(
            f"| {r['setting']} | {r['examples_per_epoch']} | {pct(r['acc_mean'])} ± {pct(r['acc_ci95'])} | "
            f"{r['seconds_mean']:.1f} ± {r['seconds_ci95']:.1f} | {r['selection_seconds_mean']:.2f} | "
            f"{r['speedup_vs_full_aug']:.2f}x / {r['speedup_per_seed_median']:.2f}x | "
            f"{diff} | {p} |")
    lines += [
        "", "Published test accuracy (MNIST-1D authors, 4000 training signals, no augmentation, their own training): "
        + ", ".join(f"{k} {100 * v:.0f}%" for k, v in ex.PUBLISHED.items()) + ".", "", "Reading:", ""]
    lines += [f"* {line}" for line in verdicts(summary, ex.PUBLISHED)]
    lines += [
        "",
        f"Environment: torch {env['torch']}, {env['threads']} torch thread(s), {env['machine']}; load average "
        f"(1/5/15 min) {env['load_start']} at the start, {env['load_end']} at the end (a shared machine: the times "
        f"are wall-clock, the order of runs is seed-major so load spreads over every setting). "
        f"Total {total_s:.0f} s. Per-run rows: `{args.tag}.csv`; per-epoch curves: `{args.tag}.json`"
        + (f"; accuracy vs wall-clock: `{args.tag}.png`" if env.get("png") else "") + ".",
        "", "Command: `" + env["command"] + "`",
    ]
    return "\n".join(lines) + "\n"


def verdicts(summary: list[dict], published: dict) -> list[str]:
    """One honest sentence per comparison, from the numbers (a 5% two-sided Welch test)."""
    by = {r["setting"]: r for r in summary}
    out = []
    for r in summary:
        if r["welch_p"] is None:
            continue
        twin = "random " + r["setting"][len("coreset "):]
        d, p = 100 * r["vs_random_diff"], r["welch_p"]
        if p is not None and p < 0.05:
            what = "beats" if d > 0 else "is worse than"
            out.append(f"{r['setting']} {what} {twin}: {d:+.1f} pp, Welch p = {p:.3g}.")
        else:
            out.append(f"{r['setting']} vs {twin}: {d:+.1f} pp, Welch p = {p:.3g}: no significant difference at 5%; "
                       f"the coreset does not win here{' (its mean is lower)' if d < 0 else ''}.")
    if "full" in by and "CNN" in published:
        f = by["full"]
        out.append(f"full (this CNN, no augmentation) reaches {pct(f['acc_mean'])} ± {pct(f['acc_ci95'])}%, "
                   f"beside the published CNN's {100 * published['CNN']:.0f}%.")
    if "full-aug" in by:
        fa = by["full-aug"]
        beaten = [r["setting"] for r in summary if r["setting"] != "full-aug" and r["acc_mean"] + r["acc_ci95"]
                  < fa["acc_mean"] - fa["acc_ci95"]]
        if beaten:
            out.append(f"full-aug ({pct(fa['acc_mean'])}%) is the most accurate and the slowest; its 95% interval lies "
                       f"above that of: {', '.join(beaten)}.")
    out.append("Times are wall-clock on a shared 2-core machine (see the load below); the order of runs spreads the "
               "load over every setting. The subset settings' time includes selection (every R = 5 epochs).")
    return out


def plot(runs: list[dict], settings: dict, path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name in settings:
        rs = [r for r in runs if r["setting"] == name]
        if not rs:
            continue
        epochs = len(rs[0]["curve"])
        secs = [statistics.fmean(r["curve"][e]["seconds"] for r in rs) for e in range(epochs)]
        acc = [statistics.fmean(r["curve"][e]["test_acc"] for r in rs) for e in range(epochs)]
        ax.plot(secs, acc, "--" if name.startswith("random") else "-", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("wall-clock, training + selection (s, log; mean over seeds)")
    ax.set_ylabel("test accuracy (mean over seeds)")
    ax.set_ylim(0.3, 1.0)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    ap.add_argument("--epochs", type=int, default=100, help="epochs of every run (default 100)")
    ap.add_argument("--n-train", type=int, default=None, help="first N training signals (default all 4000)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--settings", default=None, help="comma-separated subset of the notebook's SETTINGS")
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(__file__), "results"))
    ap.add_argument("--tag", default="mnist1d", help="result file stem (default mnist1d)")
    ap.add_argument("--render", metavar="JSON",
                    help="rewrite the .md/.png of a finished run from its .json (no training)")
    args = ap.parse_args(argv)
    if args.render:
        return render(Path(args.render))
    torch.set_num_threads(args.threads)
    ex = load_example()
    settings = ex.SETTINGS if args.settings is None else {k: ex.SETTINGS[k] for k in args.settings.split(",")}
    train_set, test_set = ex.load_mnist1d(args.n_train)
    strong = ex.Strong1d()
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.node(),
           "python": platform.python_version(), "n_train": len(train_set), "n_test": len(test_set),
           "seeds": list(range(args.seeds)), "notebook": str(NOTEBOOK.relative_to(NOTEBOOK.parents[1])),
           "command": "python benchmarks/bench_mnist1d.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    env["command"] = env["command"].strip()
    # warm-up, not recorded: the first selection in a process pays numba's compilation
    ex.train_run(train_set, test_set, strong=strong, epochs=1, regime="subset-only", selector="coreset", fraction=0.1)
    env["load_start"] = [round(v, 2) for v in os.getloadavg()]
    t0 = time.perf_counter()
    runs = []
    for seed in range(args.seeds):
        for name, setting in settings.items():
            r = ex.train_run(train_set, test_set, strong=strong, epochs=args.epochs, seed=seed, **setting)
            run = {"setting": name, "regime": setting["regime"], "selector": setting.get("selector", ""),
                   "fraction": setting.get("fraction", ""), "seed": seed, "epochs": args.epochs,
                   "test_acc": r["test_acc"], "best_test_acc": max(p["test_acc"] for p in r["curve"]),
                   "seconds": r["seconds"], "selection_seconds": r["selection_seconds"],
                   "examples_per_epoch": r["examples_per_epoch"], "load_1min": round(os.getloadavg()[0], 2),
                   "curve": r["curve"]}
            runs.append(run)
            print(f"seed {seed} {name:12s} acc {100 * r['test_acc']:.1f}%  {r['seconds']:.1f} s "
                  f"(selection {r['selection_seconds']:.2f} s)  load {run['load_1min']}", flush=True)
    total = time.perf_counter() - t0
    env["load_end"] = [round(v, 2) for v in os.getloadavg()]
    env["total_s"] = round(total, 1)
    summary = summarize(runs, settings)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env["png"] = plot(runs, settings, out / f"{args.tag}.png",
                      f"MNIST-1D, CNN1d, {args.epochs} epochs, {args.seeds} seeds, {env['threads']} thread(s)")
    md = markdown(summary, ex, args, env, total)
    write_text_atomic(out / f"{args.tag}.md", md)
    write_text_atomic(out / f"{args.tag}.csv", csv_text(runs, RUN_FIELDS))
    write_text_atomic(out / f"{args.tag}.json", json.dumps(strict_json_value(
        {"args": vars(args), "env": env, "published": ex.PUBLISHED, "summary": summary, "runs": runs}),
        indent=1, allow_nan=False) + "\n")
    print(md)
    return 0


def render(path: Path) -> int:
    """Rewrite ``<tag>.md`` and ``<tag>.png`` beside ``path`` from the runs it stores (nothing is re-measured)."""
    data = json.loads(path.read_text())
    args = argparse.Namespace(**data["args"])
    ex = load_example()
    present = {r["setting"] for r in data["runs"]}
    settings = {k: v for k, v in ex.SETTINGS.items() if k in present}
    env = data["env"]
    summary = summarize(data["runs"], settings)
    env["png"] = plot(data["runs"], settings, path.with_suffix(".png"),
                      f"MNIST-1D, CNN1d, {args.epochs} epochs, {args.seeds} seeds, {env['threads']} thread(s)")
    md = markdown(summary, ex, args, env, env["total_s"])
    write_text_atomic(path.with_suffix(".md"), md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
