"""The DistributedDataParallel path on CPU: ``torchrun`` with 2 gloo processes on a tiny digits config."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import free_port


def test_torchrun_two_gloo_processes(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
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


def _sharded_setup():
    import torch

    from coreaug.data.base import TensorDataset
    from coreaug.models import build_model

    gen = torch.Generator().manual_seed(0)
    y = torch.cat([torch.full((k,), c) for c, k in enumerate([90, 70, 50, 31, 20])])  # 261: uneven shards
    y = y[torch.randperm(y.numel(), generator=gen)]
    x = torch.randn(y.numel(), 1, 8, 8, generator=gen) + 0.3 * y[:, None, None, None].float()
    torch.manual_seed(0)
    return TensorDataset(x, y), build_model("cnn", 5, in_channels=1, image_size=8)


def _sharded_configs():
    from coreaug.train.config import TrainConfig

    base = {"model": "cnn", "device": "cpu", "fraction": 0.1, "eval_batch_size": 16}
    return {
        "equal-ceil": TrainConfig(**base),
        "proportional-pool": TrainConfig(**base, per_class="proportional", proxy_pool=0.5),
        "none": TrainConfig(**base, per_class="none"),
        "maxloss-pool": TrainConfig(**base, selector="maxloss", proxy_pool=0.25),
        "weight-proxy": TrainConfig(**base, proxy="weight", method="random+aug-subset"),
    }


def test_sharded_selection_on_two_gloo_ranks_equals_single_process(sharded_selections):
    """Each rank runs the proxy pass on its strided shard, classes are split for the greedy, and
    both ranks end with exactly the single-process (S, γ)."""
    import torch

    from coreaug.train.subsets import select_subset

    ranks = sharded_selections(_sharded_setup, _sharded_configs)
    ds, model = _sharded_setup()
    for name, cfg in _sharded_configs().items():
        ref = select_subset(cfg, model, ds, epoch=1, device=torch.device("cpu")).to_dict()
        for res in ranks:
            got = res[name]
            assert torch.equal(got["indices"], ref["indices"]), name
            assert torch.equal(got["weights"], ref["weights"]), name
            assert (got["random_main"] is None) == (ref["random_main"] is None)
            if ref["random_main"] is not None:
                assert torch.equal(got["random_main"], ref["random_main"])
