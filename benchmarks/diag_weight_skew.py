"""Largest coreset weight per epoch vs test accuracy: one CIFAR-shaped run at a given proxy pool F.

The proxy-pool benchmark (``bench_proxy_pool.py``) found training on the full-pool 10% coreset of
the harder synthetic CIFAR-shaped data unstable across seeds, while fresh 25% pools trained well.
This script re-runs one (F, seed) of that benchmark's CIFAR setting and prints, per epoch, the
largest weight γ of the current selection (``subset_weight_max``; γ has mean 1), the test accuracy
and the training loss, so the weights can be compared with the collapse.

    python benchmarks/diag_weight_skew.py 1.0 2      # F = 1, seed 2 (≈ 4 min on one core)
    python benchmarks/diag_weight_skew.py 0.25 2
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from coreaug.train.config import resolve_config
from coreaug.train.loop import train

from _cifar_shaped import write_cifar10


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    f, seed = float(args[0]), int(args[1])
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="diag_weight_skew_") as d:
        root = write_cifar10(Path(d) / "data", 5000, 1000, seed=0, signal=18.0, noise=50.0)  # bench_proxy_pool's data
        cfg = resolve_config("cifar10-resnet20", overrides={
            "data_root": str(root), "device": "cpu", "threads": 1, "epochs": 12, "batch_size": 32, "lr": 0.05,
            "milestones": [], "fraction": 0.1, "reselect_every": 1, "proxy_pool": f, "seed": seed})
        out = Path(d) / "run"
        shutil.rmtree(out, ignore_errors=True)
        res = train(cfg, out, quiet=True)
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    print(f"F={f} seed={seed} final acc {res['final_test_acc']:.3f}")
    print("  weight max per epoch:", [round(r["subset_weight_max"], 1) for r in rows])
    print("  test acc per epoch:  ", [round(r["test_acc"], 2) for r in rows])
    print("  train loss per epoch:", [round(r["train_loss"], 2) for r in rows])
    return 0


if __name__ == "__main__":
    sys.exit(main())
