"""SHA-256 of the final weights of three reference runs (issue: "one pipeline" must not change them).

Runs, each through the real CLI (``python -m coreaug train``) on 1 CPU thread:

* ``digits``: ``--preset digits-quick``
* ``cifar-pool``: a CIFAR-shaped ResNet-20 run (synthetic CIFAR-10 pickles, 2,000 train images) with
  ``--proxy-pool 0.5``
* ``forgetting``: ``--preset digits-quick --selector forgetting``

The hash covers every tensor of the final ``checkpoint.pt``'s model state dict (names, dtypes,
shapes and bytes, in order). Usage: ``python benchmarks/weights_hash.py [--out results/weights_hash.json]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cifar_shaped import write_cifar10  # noqa: E402


def state_hash(run_dir: Path) -> str:
    """SHA-256 over the model state dict of ``run_dir/checkpoint.pt``."""
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)["model"]
    h = hashlib.sha256()
    for name, t in state.items():
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{t.numel()}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def runs(tmp: Path) -> dict[str, list[str]]:
    data = write_cifar10(tmp / "cifar", 2000, 500, seed=0)
    return {
        "digits": ["--preset", "digits-quick"],
        "cifar-pool": ["--dataset", "cifar10", "--data-root", str(data), "--model", "resnet20", "--epochs", "2",
                       "--method", "subset-only", "--fraction", "0.1", "--reselect-every", "1",
                       "--proxy-pool", "0.5", "--batch-size", "64", "--lr", "0.05"],
        "forgetting": ["--preset", "digits-quick", "--selector", "forgetting"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=None, help="write the hashes as JSON here")
    ap.add_argument("--only", default=None, help="comma-separated run names")
    args = ap.parse_args()
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, flags in runs(tmp).items():
            if args.only and name not in args.only.split(","):
                continue
            run_dir = tmp / name
            cmd = [sys.executable, "-m", "coreaug", "train", *flags, "--threads", "1", "--out", str(run_dir), "--quiet"]
            subprocess.run(cmd, check=True)
            out[name] = state_hash(run_dir)
            print(f"{name}: {out[name]}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
