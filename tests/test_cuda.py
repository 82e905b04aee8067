"""Checks that need a GPU (``pytest -m cuda``; skipped without CUDA). Run by benchmarks/gpu_check.sh.

Every check compares the CUDA result with the CPU one computed in the same test.
"""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CPU = torch.device("cpu")
GPU = torch.device("cuda") if torch.cuda.is_available() else None

TINY = {"model": "cnn", "epochs": 2, "batch_size": 64, "fraction": 0.1, "lr": 0.05, "milestones": [],
        "strong_aug": "gaussian-noise", "reselect_every": 1, "threads": 1}


def _amp_dtypes():
    dts = [torch.float16]
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        dts.append(torch.bfloat16)
    return dts


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_amp_training_step_matches_fp32(dtype):
    if dtype not in _amp_dtypes():
        pytest.skip(f"{dtype} not supported on this GPU")
    from coreaug.models import build_model
    from coreaug.train import weighted_batch_loss

    torch.manual_seed(0)
    ref = build_model("resnet20", 10, in_channels=3, image_size=32).to(GPU)
    amp_model = build_model("resnet20", 10, in_channels=3, image_size=32).to(GPU)
    amp_model.load_state_dict(ref.state_dict())
    x = torch.randn(32, 3, 32, 32, device=GPU)
    y = torch.randint(0, 10, (32,), device=GPU)
    w = torch.rand(32, device=GPU) + 0.5
    losses = {}
    for name, model, amp in (("fp32", ref, None), ("amp", amp_model, dtype)):
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
        with torch.autocast("cuda", dtype=amp, enabled=amp is not None):
            loss = weighted_batch_loss(model(x), y, w)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses[name] = float(loss)
    assert torch.isfinite(torch.tensor(list(losses.values()))).all()
    assert abs(losses["amp"] - losses["fp32"]) < 0.05 * abs(losses["fp32"]) + 1e-3
    diffs = [(a - b).abs().max() / (b.abs().max() + 1e-6) for a, b in zip(amp_model.parameters(), ref.parameters())]
    assert max(float(d) for d in diffs) < 0.05  # the AMP step moved the weights like the fp32 step


def test_amp_run_completes_and_reports_selection_share(tmp_path):
    from coreaug.train.config import resolve_config
    from coreaug.train.loop import train

    res = train(resolve_config("digits-quick", overrides={**TINY, "device": "cuda", "amp": True}), tmp_path / "r",
                quiet=True)
    assert res["completed"] and res["device"].startswith("cuda") and 0 < res["selection_share"] < 1


def test_proxy_pass_on_cuda_matches_cpu():
    from coreaug.data.base import TensorDataset
    from coreaug.models import build_model
    from coreaug.proxies import compute_proxies

    torch.manual_seed(0)
    model = build_model("resnet20", 10, in_channels=3, image_size=32)
    ds = TensorDataset(torch.randn(300, 3, 32, 32), torch.randint(0, 10, (300,)))
    cpu = compute_proxies(model, ds, kind="weight", batch_size=64)
    model.to(GPU)
    exact = compute_proxies(model, ds, kind="weight", amp=False, channels_last=False, out_device=None)
    assert exact.features.device.type == "cuda"
    assert torch.allclose(exact.features.cpu(), cpu.features, atol=1e-4)
    fast = compute_proxies(model, ds, kind="weight")  # defaults on CUDA: AMP + channels-last, batch 1024
    assert fast.features.dtype == torch.float32 and torch.allclose(fast.features, cpu.features, atol=3e-2)
    assert torch.equal(fast.indices, cpu.indices) and torch.equal(fast.labels, cpu.labels)


def test_device_side_selection_equals_cpu_selection():
    from coreaug.select import select

    gen = torch.Generator().manual_seed(0)
    y = torch.arange(3000) % 10
    z = 2.0 * torch.randn(3000, 10, generator=gen, dtype=torch.float64)
    z[torch.arange(3000), y] += 3.0
    g = torch.softmax(z, 1)
    g[torch.arange(3000), y] -= 1.0
    kw = dict(labels=y, fraction=0.1, per_class="equal-ceil", normalize_weights=True, dtype=torch.float64)
    cpu = select("coreset", features=g, device="cpu", **kw)
    gpu = select("coreset", features=g.to(GPU), device="cuda", **kw)
    assert torch.equal(gpu.indices.cpu(), cpu.indices)
    assert torch.allclose(gpu.weights.cpu().double(), cpu.weights.double())


def test_select_subset_keeps_proxies_on_the_training_device():
    from coreaug.data.base import TensorDataset
    from coreaug.models import build_model
    from coreaug.train.config import TrainConfig
    from coreaug.train.subsets import select_subset

    torch.manual_seed(0)
    model = build_model("mlp", 4, in_channels=1, image_size=8)
    ds = TensorDataset(torch.randn(400, 1, 8, 8), torch.arange(400) % 4)
    cfg = TrainConfig(model="mlp", fraction=0.1)
    cpu = select_subset(cfg, model, ds, epoch=0, device=CPU)
    gpu = select_subset(cfg, model.to(GPU), ds, epoch=0, device=GPU)  # MLP: no conv, AMP only
    overlap = len(set(cpu.indices.tolist()) & set(gpu.indices.tolist())) / cpu.indices.numel()
    assert gpu.indices.numel() == cpu.indices.numel() and overlap >= 0.9  # bf16/fp16 forward: near-ties may flip


def test_jacobian_on_cuda_equals_cpu():
    from spectra import jacobian

    from coreaug.models import build_model

    torch.manual_seed(0)
    model = build_model("cnn", 5, in_channels=1, image_size=8).eval()
    x = torch.randn(6, 1, 8, 8)
    j_cpu = jacobian(model, x)
    j_gpu = jacobian(model.to(GPU), x.to(GPU))
    assert j_gpu.shape == j_cpu.shape
    assert torch.allclose(j_gpu.cpu(), j_cpu, atol=1e-4, rtol=1e-4)


def test_checkpoint_written_on_cuda_resumes_on_cpu(tmp_path):
    from coreaug.train.config import resolve_config
    from coreaug.train.loop import train

    out = tmp_path / "r"
    cfg = resolve_config("digits-quick", overrides={**TINY, "epochs": 3, "device": "cuda", "amp": True})
    first = train(cfg, out, quiet=True, stop_after_epoch=1)
    assert not first["completed"]
    cfg_cpu = resolve_config("digits-quick", overrides={**TINY, "epochs": 3, "device": "cpu", "amp": True})
    assert cfg_cpu.hash() == cfg.hash()  # the device is not part of what is computed
    with pytest.warns(UserWarning, match="amp"):
        res = train(cfg_cpu, out, resume=True, quiet=True)
    assert res["completed"] and res["epochs_done"] == 3 and res["device"] == "cpu"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
