"""End-to-end epoch time on CIFAR-shaped data: full-aug vs subset-only 10% coresets at R = 1 and R = 5.

Synthetic CIFAR-10-format data (``_cifar_shaped.write_cifar10``: real ``cifar-10-batches-py``
pickles, 10 balanced classes) go through the unmodified training path: the ``cifar10-resnet20``
preset (ResNet-20, crop+flip weak, AutoAugment-CIFAR10 strong, batch 128, SGD) with only the size,
epochs, device and threads overridden. Settings, each one training run from scratch:

* ``full-aug``              all n examples + a strong copy of each (2n per epoch), no selection
* ``subset-only R=1``       10% coreset (facility location on bias proxies) re-selected every epoch
* ``subset-only R=5``       the same, re-selected every 5 epochs (run for 5 epochs: one full period)

Per-epoch time = (training + selection wall-clock) / epochs, evaluation excluded (``results.json``:
``wall_clock_total``); selection share = selection / (training + selection); speed-up = full-aug's
per-epoch time / the setting's. Times are wall-clock on a possibly shared machine: the 1-minute load
average is recorded before and after. Peak memory: CPU → peak RSS above the level before the run
(kernel high-water mark, ``_memory.RssHighWater``); CUDA → ``max_memory_allocated``.

    python benchmarks/bench_cifar_shaped.py                       # 5k images, 1 thread, CPU (minutes)
    python benchmarks/bench_cifar_shaped.py --n-train 50000 --device cuda --amp --out-dir benchmarks/results/gpu
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from coreaug.device import resolve_device
from coreaug.io import csv_text, write_text_atomic
from coreaug.train.config import resolve_config
from coreaug.train.loop import train

from _cifar_shaped import write_cifar10
from _memory import RssHighWater

FIELDS = ["setting", "method", "reselect_every", "proxy_pool", "n_train", "epochs", "device", "amp", "threads",
          "epoch_time_s", "train_time_per_epoch_s", "selection_time_per_reselection_s", "selection_share",
          "speedup_vs_full_aug", "examples_per_epoch", "final_test_acc", "peak_mem_mib", "load_before", "load_after"]


def run_setting(name: str, overrides: dict, root: Path, device: torch.device) -> dict:
    cfg = resolve_config("cifar10-resnet20", overrides=overrides)
    load_before = os.getloadavg()[0]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory(prefix="bench_cifar_shaped_") as run_dir, RssHighWater() as hw:
        res = train(cfg, Path(run_dir) / "run", quiet=True)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else hw.peak
    epochs = res["epochs_done"]
    return {
        "setting": name, "method": cfg.method, "reselect_every": cfg.reselect_every if cfg.uses_subset else "",
        "proxy_pool": cfg.proxy_pool if cfg.uses_subset else "", "epochs": epochs,
        "amp": cfg.amp, "epoch_time_s": res["wall_clock_total"] / epochs,
        "train_time_per_epoch_s": res["train_time_total"] / epochs,
        "selection_time_per_reselection_s": (res["selection_time_total"] / res["n_selections"]
                                             if res["n_selections"] else 0.0),
        "selection_share": res["selection_share"],
        "examples_per_epoch": res["examples_seen_total"] // max(1, epochs) if res["world_size"] == 1 else "",
        "final_test_acc": res["final_test_acc"],
        "peak_mem_mib": round(peak / 2**20, 1) if peak is not None else "",
        "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-train", type=int, default=5000, help="training images (default 5000)")
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--full-epochs", type=int, default=1, help="epochs of the full-aug run (default 1)")
    ap.add_argument("--r1-epochs", type=int, default=2, help="epochs of the R=1 run (default 2)")
    ap.add_argument("--r5-epochs", type=int, default=5, help="epochs of the R=5 run (default 5, one period)")
    ap.add_argument("--proxy-pool", type=float, default=1.0, help="proxy pool F of the subset runs (default 1)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--num-workers", default="auto", help="loader workers (default auto)")
    ap.add_argument("--data-root", help="reuse synthetic data written here before (else a temporary folder)")
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(__file__), "results"))
    ap.add_argument("--tag", default="cifar_shaped", help="result file stem (default cifar_shaped)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    workers = args.num_workers if args.num_workers == "auto" else int(args.num_workers)
    t0 = time.perf_counter()
    tmp = None
    if args.data_root and (Path(args.data_root) / "cifar-10-batches-py" / "test_batch").is_file():
        root = Path(args.data_root)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="cifar_shaped_data_")
        root = write_cifar10(args.data_root or tmp.name, args.n_train, args.n_test, seed=0)
    common = {"data_root": str(root), "device": str(device), "threads": args.threads, "amp": args.amp,
              "milestones": [], "num_workers": workers, "fraction": args.fraction, "seed": 0}
    settings = [
        ("full-aug", {"method": "full-aug", "epochs": args.full_epochs}),
        ("subset-only R=1", {"method": "subset-only", "reselect_every": 1, "epochs": args.r1_epochs,
                             "proxy_pool": args.proxy_pool}),
        ("subset-only R=5", {"method": "subset-only", "reselect_every": 5, "epochs": args.r5_epochs,
                             "proxy_pool": args.proxy_pool}),
    ]
    rows = []
    for name, ov in settings:
        row = run_setting(name, {**common, **ov}, root, device)
        row.update(n_train=args.n_train, device=str(device), threads=args.threads)
        rows.append(row)
        print(f"{name}: {row['epoch_time_s']:.2f} s/epoch, selection share {100 * row['selection_share']:.1f}%",
              flush=True)
    full = rows[0]["epoch_time_s"]
    for r in rows:
        r["speedup_vs_full_aug"] = full / r["epoch_time_s"]
    for r in rows:
        for k in ("epoch_time_s", "train_time_per_epoch_s", "selection_time_per_reselection_s", "selection_share",
                  "speedup_vs_full_aug", "final_test_acc"):
            r[k] = round(float(r[k]), 4)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / f"{args.tag}.csv", csv_text(rows, FIELDS))
    md = [f"# Full-aug vs subset-only {100 * args.fraction:g}% on CIFAR-shaped synthetic data "
          f"({args.n_train} train images, ResNet-20, {device}{', AMP' if args.amp else ''}, "
          f"{args.threads} thread(s), {platform.node()})", "",
          "| setting | epochs | s/epoch (train+selection) | train s/epoch | selection s/reselection | "
          "selection share | speed-up vs full-aug | examples/epoch | peak MiB | load before/after |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    md += [f"| {r['setting']} | {r['epochs']} | {r['epoch_time_s']:.2f} | {r['train_time_per_epoch_s']:.2f} | "
           f"{r['selection_time_per_reselection_s']:.2f} | {100 * r['selection_share']:.1f}% | "
           f"{r['speedup_vs_full_aug']:.2f}x | {r['examples_per_epoch']} | {r['peak_mem_mib']} | "
           f"{r['load_before']}/{r['load_after']} |" for r in rows]
    md += ["", f"Total {time.perf_counter() - t0:.0f} s. Evaluation is excluded from the epoch times; test "
               "accuracy after so few epochs on synthetic data says nothing about the method and is only in "
               "the CSV. Wall-clock on a shared machine: see the load columns."]
    write_text_atomic(out / f"{args.tag}.md", "\n".join(md) + "\n")
    write_text_atomic(out / f"{args.tag}.json", json.dumps({"args": vars(args), "rows": rows}, indent=1) + "\n")
    print("\n".join(md))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
