"""Augmented coresets against dynamic pruning at equal cost, on digits (CNN and MLP).

The cells are those of ``coreaug sweep --grid vs-pruning``: full augmentation; InfoBatch with
r = 0.3 and r = 0.5 and UCB pruning (keep 0.7), each on the full-augmentation regime so every method
sees the same strong augmentation; random subsets and augmented coresets at 10% and 30%
(``subset-only``). Every cell runs ``--seeds`` seeds (default 5) of the ``digits-quick`` preset
(12 epochs, AutoAugment, 1 thread, diagnostics off) through ``coreaug.train.loop.train``; then
``coreaug report``'s statistics and cost sections are written to ``benchmarks/results/vs_pruning_<model>/``
(``summary.md`` with the matched-cost table, ``accuracy_vs_cost.png``, ``matched_cost.csv``), and a
combined ``benchmarks/results/vs_pruning.md``.

Reference setting, not a claim about these runs: InfoBatch reports keeping full-data accuracy on
CIFAR-10 with ResNet-18 (95.6% vs 95.6%) while saving about 40% of the training cost (Qin et al.,
ICLR 2024, Table 1, r = 0.5).

Usage: ``python benchmarks/bench_vs_pruning.py [--models cnn,mlp] [--seeds 5] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent

#: (name, overrides of the digits-quick preset) — the vs-pruning grid's cells
CELLS: list[tuple[str, dict]] = [
    ("full-aug", {"method": "full-aug"}),
    ("infobatch-r0.3", {"method": "full-aug", "pruning": "infobatch", "prune_ratio": 0.3}),
    ("infobatch-r0.5", {"method": "full-aug", "pruning": "infobatch", "prune_ratio": 0.5}),
    ("ucb-keep0.7", {"method": "full-aug", "pruning": "ucb", "prune_keep": 0.7}),
    ("random-10", {"method": "subset-only", "selector": "random", "fraction": 0.1}),
    ("random-30", {"method": "subset-only", "selector": "random", "fraction": 0.3}),
    ("coreset-10", {"method": "subset-only", "selector": "coreset", "fraction": 0.1}),
    ("coreset-30", {"method": "subset-only", "selector": "coreset", "fraction": 0.3}),
]

PUBLISHED = ("InfoBatch (Qin et al., ICLR 2024, Table 1): CIFAR-10 ResNet-18, full data 95.6%, InfoBatch r=0.5 "
             "95.6% at ~40% lower training cost. Quoted as the reference setting, not as a claim about these runs.")


def run_grid(model: str, seeds: int, root: Path) -> list[Path]:
    from coreaug.train import loop, resolve_config

    folders = []
    for seed in range(seeds):  # seed-major: a partial run still has every cell
        for name, overrides in CELLS:
            out = root / f"{name}__s{seed}"
            folders.append(out)
            if (out / "results.json").is_file():
                continue
            cfg = resolve_config("digits-quick", overrides={**overrides, "model": model, "seed": seed,
                                                           "diagnostics_every": 0, "threads": 1})
            loop.train(cfg, out, quiet=True, resume=out.exists())
            print(f"{model} {name} s{seed} done", flush=True)
    return folders


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="cnn,mlp")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "results"))
    ap.add_argument("--runs", default=str(ROOT / "runs_vs_pruning"), help="run folders (resumable)")
    args = ap.parse_args()
    from coreaug.report import write_stats_report

    torch.set_num_threads(1)
    out = Path(args.out)
    parts = [f"# Augmented coresets vs dynamic pruning at equal cost (digits)\n",
             f"`python benchmarks/bench_vs_pruning.py --models {args.models} --seeds {args.seeds}`; "
             f"torch {torch.__version__}, 1 thread, load average at start {os.getloadavg()[0]:.2f}, "
             f"{time.strftime('%Y-%m-%d')}.\n", PUBLISHED + "\n"]
    for model in args.models.split(","):
        t0 = time.perf_counter()
        folders = run_grid(model, args.seeds, Path(args.runs) / model)
        paths = write_stats_report(folders, out / f"vs_pruning_{model}")
        parts.append(f"\n## digits, {model} ({len(folders)} runs, {time.perf_counter() - t0:.0f} s)\n")
        parts.append(Path(paths["md"]).read_text())
        parts.append(f"\n![accuracy vs cost](vs_pruning_{model}/accuracy_vs_cost.png)\n")
    parts.append(f"\nload average at the end: {os.getloadavg()[0]:.2f}\n")
    (out / "vs_pruning.md").write_text("".join(parts))
    print(f"wrote {out / 'vs_pruning.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
