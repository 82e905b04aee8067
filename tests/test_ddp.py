"""The DistributedDataParallel path on CPU: ``torchrun`` with 2 gloo processes on a tiny digits config."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_gloo_processes(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "-m", "coreaug", "train", "--preset", "digits-quick", "--model", "mlp", "--epochs", "2",
        "--method", "random+aug-subset", "--selector", "coreset", "--fraction", "0.1", "--reselect-every", "1",
        "--strong-aug", "gaussian-noise", "--batch-size", "64", "--device", "cpu", "--threads", "1", "--quiet",
        "--out", str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.count("done: random+aug-subset") == 1  # only rank 0 reports
    res = json.loads((out / "results.json").read_text())
    assert res["world_size"] == 2 and res["completed"] and res["n_selections"] == 2
    assert res["examples_seen_total"] == 2 * 300  # |random main| + |S| = 150 + 150 per epoch, over both ranks
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(0 < r["test_acc"] <= 1 for r in rows)
    # each rank ran ceil(150 / 64) = 3 steps on its half of the 300 epoch examples (DistributedSampler)
    assert [r["steps"] for r in rows] == [3, 3]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["checkpoint.pt", "config.json", "metrics.csv", "metrics.jsonl", "results.json",
         "diagnostics.csv", "diagnostics.jsonl"])
    # digits-quick's spectral diagnostics (K = 4): computed once per diagnostic epoch, on rank 0
    diag = [json.loads(line) for line in (out / "diagnostics.jsonl").read_text().splitlines()]
    assert [d["epoch"] for d in diag] == [0, 2] and all(d["cond"] > 1 and d["subset_size"] for d in diag)
    assert res["diagnostics_time_total"] > 0
