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

MNIST-1D (``--mnist1d``): the same cells on the user's data, model and strong augmentation of
``notebooks/04_your_own_loop.ipynb`` (``_mnist1d.load_example``), trained in a plain loop on the
public API (Adam, cosine schedule, ``--mnist1d-epochs``), with the pruning fed the per-example losses
through ``coreset.record``; costs are counted the way ``coreaug train`` counts them.

Usage: ``python benchmarks/bench_vs_pruning.py [--models cnn,mlp] [--seeds 5] [--mnist1d] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent

def _cell_name(cell: dict) -> str:
    """A short folder / table name of a vs-pruning cell."""
    if cell.get("pruning") == "infobatch":
        return f"infobatch-r{cell['prune_ratio']}"
    if cell.get("pruning"):
        return f"{cell['pruning']}-keep{cell['prune_keep']}"
    if cell["method"] in ("full", "full-aug"):
        return cell["method"]
    return f"{cell['selector']}-{round(100 * cell['fraction'])}"


def _cells() -> list[tuple[str, dict]]:
    """(name, overrides of the digits-quick preset): the cells of ``coreaug sweep --grid vs-pruning`` (one definition)."""
    from coreaug.sweep import GRID_PRESETS

    return [(_cell_name(cell), dict(cell)) for cell in GRID_PRESETS["vs-pruning"]["cells"]]


CELLS: list[tuple[str, dict]] = _cells()

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


def _cell_api_kwargs(overrides: dict) -> dict:
    """A vs-pruning cell as AugmentedCoreset keywords."""
    kw = {"regime": overrides["method"], "selector": overrides.get("selector", "coreset"),
          "fraction": overrides.get("fraction", 0.1)}
    if overrides.get("pruning"):
        opts = {"prune_ratio": overrides["prune_ratio"]} if overrides["pruning"] == "infobatch" else \
            {"keep": overrides["prune_keep"]}
        kw.update(pruning=overrides["pruning"], pruning_options=opts)
    return kw


def mnist1d_run(ex, train_set, test_set, overrides: dict, *, seed: int, epochs: int) -> dict:
    """One MNIST-1D run in a plain loop on the public API → a run dict for coreaug.report.matched_cost."""
    import pandas as pd

    import coreaug
    from coreaug.api.loss import per_example_loss

    torch.manual_seed(seed)
    model = ex.CNN1d()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    cs = coreaug.AugmentedCoreset(train_set, strong=ex.Strong1d(), seed=seed, reselect_every=5, epochs=epochs,
                                  **_cell_api_kwargs(overrides))
    rows, clock, last_sel = [], 0.0, None
    for epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        seen = 0
        for x, y, w, idx, view in cs.loader(model, epoch, batch_size=64, with_index=True):
            logits = model(x)
            pe = per_example_loss(logits, y)
            loss = coreaug.weighted_loss(logits, y, w, per_example=pe)
            opt.zero_grad()
            loss.backward()
            opt.step()
            cs.record(idx[view == 0], losses=pe.detach()[view == 0])
            seen += len(y)
        sched.step()
        clock += time.perf_counter() - t0
        proxy = cs.selection.forward_passes if cs.selection is not None and cs.selection is not last_sel else 0
        last_sel = cs.selection
        rows.append({"epoch": epoch + 1, "test_acc": ex.accuracy(model, test_set), "wall_clock": clock,
                     "fwd_train": seen, "bwd_train": seen, "fwd_proxy": proxy})
    metrics = pd.DataFrame(rows)
    results = {"method": overrides["method"], "selector": overrides.get("selector"),
               "fraction": overrides.get("fraction", 1.0), "seed": seed, "final_test_acc": rows[-1]["test_acc"],
               "wall_clock_total": clock, "selection_time_total": cs.selection_time,
               "example_passes_total": int(metrics[["fwd_train", "bwd_train", "fwd_proxy"]].to_numpy().sum())}
    config = {"pruning": overrides.get("pruning", "none"), "prune_ratio": overrides.get("prune_ratio", 0.5),
              "prune_keep": overrides.get("prune_keep", 0.7)}
    return {"dir": f"mnist1d/{overrides}/s{seed}", "results": results, "metrics": metrics, "config": config}


def mnist1d_section(seeds: int, epochs: int, out: Path) -> str:
    """The vs-pruning cells on MNIST-1D: the matched-cost table and the accuracy-vs-cost plot."""
    import matplotlib.pyplot as plt

    from coreaug.io import write_figure_atomic
    from coreaug.report.matched_cost import accuracy_vs_cost_figure, matched_cost_frame, matched_cost_markdown

    sys.path.insert(0, str(ROOT))
    from _mnist1d import load_example

    ex = load_example()
    train_set, test_set = ex.load_mnist1d()
    t0 = time.perf_counter()
    runs = []
    for seed in range(seeds):
        for name, overrides in CELLS:
            runs.append(mnist1d_run(ex, train_set, test_set, overrides, seed=seed, epochs=epochs))
            print(f"mnist1d {name} s{seed}: {runs[-1]['results']['final_test_acc']:.3f}", flush=True)
    frame = matched_cost_frame(runs)
    (out / "vs_pruning_mnist1d").mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "vs_pruning_mnist1d" / "matched_cost.csv", index=False)
    fig = accuracy_vs_cost_figure(runs)
    write_figure_atomic(fig, out / "vs_pruning_mnist1d" / "accuracy_vs_cost.png", dpi=110)
    plt.close(fig)
    text = (f"\n## MNIST-1D, the notebook's 1-D CNN in a plain loop ({len(runs)} runs, {epochs} epochs, "
            f"{time.perf_counter() - t0:.0f} s)\n\nPublished MNIST-1D test accuracy (its authors): logistic "
            f"regression 32%, MLP 68%, CNN 94%, GRU 91%.\n\n" + matched_cost_markdown(frame)
            + "\n![accuracy vs cost](vs_pruning_mnist1d/accuracy_vs_cost.png)\n")
    (out / "vs_pruning_mnist1d" / "section.md").write_text(text)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="cnn,mlp")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "results"))
    ap.add_argument("--runs", default=str(ROOT / "runs_vs_pruning"), help="run folders (resumable)")
    ap.add_argument("--mnist1d", action="store_true", help="also the MNIST-1D cells (plain loop on the API)")
    ap.add_argument("--mnist1d-epochs", type=int, default=40)
    args = ap.parse_args()
    from coreaug.report import write_stats_report

    torch.set_num_threads(1)
    out = Path(args.out)
    parts = ["# Augmented coresets vs dynamic pruning at equal cost (digits)\n",
             f"`python benchmarks/bench_vs_pruning.py --models {args.models} --seeds {args.seeds}`; "
             f"torch {torch.__version__}, 1 thread, load average at start {os.getloadavg()[0]:.2f}, "
             f"{time.strftime('%Y-%m-%d')}.\n", PUBLISHED + "\n"]
    for model in [m for m in args.models.split(",") if m]:
        t0 = time.perf_counter()
        folders = run_grid(model, args.seeds, Path(args.runs) / model)
        paths = write_stats_report(folders, out / f"vs_pruning_{model}")
        parts.append(f"\n## digits, {model} ({len(folders)} runs, {time.perf_counter() - t0:.0f} s)\n")
        parts.append(Path(paths["md"]).read_text())
        parts.append(f"\n![accuracy vs cost](vs_pruning_{model}/accuracy_vs_cost.png)\n")
    if args.mnist1d:
        parts.append(mnist1d_section(args.seeds, args.mnist1d_epochs, out))
    elif (out / "vs_pruning_mnist1d" / "section.md").is_file():  # kept from an earlier --mnist1d run
        parts.append((out / "vs_pruning_mnist1d" / "section.md").read_text())
    parts.append(f"\nload average at the end: {os.getloadavg()[0]:.2f}\n")
    (out / "vs_pruning.md").write_text("".join(parts))
    print(f"wrote {out / 'vs_pruning.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
