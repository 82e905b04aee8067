"""Selectors in training runs and on the command line: config, info, forgetting history, needs."""

from __future__ import annotations

import json

import pytest
import torch

from coreaug.cli import main
from coreaug.errors import ConfigError
from coreaug.io import load_checkpoint
from coreaug.select import SELECTION_METHODS, REGISTRY
from coreaug.train import SELECTORS, resolve_config, train, validate

TINY = {"model": "mlp", "epochs": 2, "batch_size": 64, "fraction": 0.1, "lr": 0.05, "milestones": [],
        "device": "cpu", "strong_aug": "gaussian-noise"}


def tiny(**kw):
    return resolve_config("digits-quick", overrides={**TINY, **kw})


def test_config_accepts_every_registered_selector_and_aliases():
    assert tuple(SELECTORS) == tuple(SELECTION_METHODS)
    for name in SELECTION_METHODS:
        assert validate(tiny(selector=name)).selector == name
    assert validate(tiny(selector="k-center")).selector == "kcenter"
    with pytest.raises(ConfigError, match="unknown selector 'nope'"):
        validate(tiny(selector="nope"))


def test_info_lists_selectors_with_needs(capsys):
    assert main(["info", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for name, spec in REGISTRY.items():
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(name + " "))
        assert all(need in line for need in spec.inputs)


def test_select_cli_forgetting_and_unknown_are_one_line_errors(tmp_path, capsys):
    assert main(["select", "--method", "forgetting", "--out", str(tmp_path / "f.json")]) == 2
    err = capsys.readouterr().err
    assert "coreaug train --selector forgetting" in err and err.count("\n") == 1
    assert main(["select", "--method", "bogus", "--out", str(tmp_path / "f.json")]) == 2
    assert "unknown selection method 'bogus'" in capsys.readouterr().err
    assert not (tmp_path / "f.json").exists()


def test_forgetting_run_records_history_and_resumes_exactly(tmp_path):
    cfg = tiny(epochs=3, method="subset-only", selector="forgetting", seed=2)
    full = train(cfg, tmp_path / "full", quiet=True)
    ck = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    hist = ck["forgetting"]
    k = ck["subset"]["indices"].numel()
    # subset-only trains on S (weak view) each epoch: 3 epochs × |S| presentations recorded
    assert int(hist["seen"].sum()) == 3 * k and int(hist["seen"].max()) <= 3
    assert torch.all(ck["subset"]["weights"] == 1)
    part = train(cfg, tmp_path / "part", quiet=True, stop_after_epoch=1)
    assert not part["completed"]
    resumed = train(cfg, tmp_path / "part", resume=True, quiet=True)
    for key in ("final_test_acc", "final_train_loss", "examples_seen_total"):
        assert resumed[key] == full[key], key
    ck2 = load_checkpoint(tmp_path / "part" / "checkpoint.pt")
    assert torch.equal(ck2["subset"]["indices"], ck["subset"]["indices"])
    for key in ("prev", "forgets", "learned", "seen"):
        assert torch.equal(ck2["forgetting"][key], hist[key]), key


# ------------------------------------------------------------------ one proxy pass for the union of needs
def test_proxy_pass_fills_exactly_the_needed_outputs_against_autograd():
    from coreaug.data import ArrayDataset
    from coreaug.errors import InputError
    from coreaug.models import build_model, last_linear
    from coreaug.proxies import compute_proxies
    from coreaug.select import needs_of

    gen = torch.Generator().manual_seed(0)
    ds = ArrayDataset(torch.randint(0, 256, (20, 1, 8, 8), dtype=torch.uint8, generator=gen),
                      torch.randint(0, 5, (20,), generator=gen), transform=lambda im: im.float() / 255.0)
    torch.manual_seed(0)
    model = build_model("mlp", 5, in_channels=1, image_size=8)
    plain = compute_proxies(model, ds, batch_size=7)
    assert plain.probs is None and plain.embeddings is None and plain.grad_norms is None
    p = compute_proxies(model, ds, batch_size=7, needs=needs_of("entropy", "kcenter", "grand", "forgetting"))
    assert torch.equal(p.features, plain.features) and torch.equal(p.losses, plain.losses)
    fc = last_linear(model)
    seen = {}
    handle = fc.register_forward_hook(lambda m, i, o: seen.update(h=i[0].detach()))
    model.eval()
    for i in range(20):
        x, y, _ = ds[i]
        z = model(x[None])
        assert torch.allclose(p.probs[i], z.softmax(1)[0].detach(), atol=1e-6)
        assert torch.allclose(p.embeddings[i], seen["h"][0], atol=1e-6)
        w, b = torch.autograd.grad(torch.nn.functional.cross_entropy(z, torch.tensor([y])), [fc.weight, fc.bias])
        assert float(p.grad_norms[i]) == pytest.approx(float(torch.cat([w.flatten(), b]).norm()), rel=1e-5)
    handle.remove()
    with pytest.raises(InputError, match="unknown proxy-pass need"):
        compute_proxies(model, ds, needs={"bogus"})


@pytest.mark.parametrize("selector", ["entropy", "grand", "kcenter", "herding", "graph_cut", "gradmatch", "craig_pb"])
def test_select_subset_dispatches_with_needs_and_weights(selector):
    from coreaug.models import build_model
    from coreaug.train.loop import prepare_data
    from coreaug.train.subsets import select_subset

    cfg = validate(tiny(selector=selector, per_class="equal"))
    bundle, views = prepare_data(cfg)
    torch.manual_seed(0)
    model = build_model("mlp", 10, in_channels=1, image_size=8)
    state = select_subset(cfg, model, views["eval_train"], epoch=0, device=torch.device("cpu"))
    again = select_subset(cfg, model, views["eval_train"], epoch=0, device=torch.device("cpu"))
    assert torch.equal(state.indices, again.indices) and torch.equal(state.weights, again.weights)
    idx = state.indices
    assert torch.equal(idx, idx.unique()) and int(idx.max()) < 1437
    if REGISTRY[selector].weighted:
        assert state.weights.mean().item() == pytest.approx(1.0, rel=1e-5) and bool((state.weights >= 0).all())
    else:
        assert torch.all(state.weights == 1)
    if selector != "craig_pb":
        assert idx.numel() == 143
        targets = torch.as_tensor(views["eval_train"].targets)
        assert torch.bincount(targets[idx], minlength=10).tolist() == [15, 15, 15, 14, 14, 14, 14, 14, 14, 14]


@pytest.mark.parametrize("method", ["entropy", "gradmatch"])
def test_select_cli_needs_based_selectors(tmp_path, method):
    out = tmp_path / "s.json"
    assert main(["select", "--method", method, "--model", "mlp", "--fraction", "0.1", "--normalize-weights",
                 "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["method"] == method and d["size"] == 143 and d["indices"] == sorted(set(d["indices"]))
    assert sum(d["weights"]) == pytest.approx(143, rel=1e-5)


@pytest.mark.slow
def test_forgetting_history_gathered_from_both_ddp_ranks(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "coreaug", "train", "--preset",
           "digits-quick", "--model", "mlp", "--epochs", "2", "--method", "random+aug-subset", "--selector",
           "forgetting", "--fraction", "0.1", "--strong-aug", "gaussian-noise", "--batch-size", "64", "--device",
           "cpu", "--threads", "1", "--quiet", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    hist = load_checkpoint(out / "checkpoint.pt")["forgetting"]
    # random main subset of 150 per epoch, seen on two ranks and gathered (DistributedSampler pads evenly)
    assert 300 <= int(hist["seen"].sum()) <= 302


# ------------------------------------------------------------------ DDP: sharded pass gathers every need
def _ddp_setup():
    from coreaug.data.base import TensorDataset
    from coreaug.models import build_model

    gen = torch.Generator().manual_seed(0)
    y = torch.cat([torch.full((k,), c) for c, k in enumerate([60, 45, 31])])  # 136 points: uneven shards
    y = y[torch.randperm(y.numel(), generator=gen)]
    x = torch.randn(y.numel(), 1, 8, 8, generator=gen) + 0.3 * y[:, None, None, None].float()
    torch.manual_seed(0)
    return TensorDataset(x, y), build_model("mlp", 3, in_channels=1, image_size=8)


def _ddp_configs():
    from coreaug.train.config import TrainConfig

    base = {"model": "mlp", "device": "cpu", "fraction": 0.1, "eval_batch_size": 16}
    return {
        "kcenter": TrainConfig(**base, selector="kcenter"),
        "grand-pool": TrainConfig(**base, selector="grand", proxy_pool=0.5),
        "entropy": TrainConfig(**base, selector="entropy", per_class="none"),
        "gradmatch-pool": TrainConfig(**base, selector="gradmatch", proxy_pool=0.5, per_class="proportional"),
        "craig_pb": TrainConfig(**base, selector="craig_pb"),
    }


def test_needs_gathered_across_two_gloo_ranks_equal_single_process(sharded_selections):
    from coreaug.train.subsets import select_subset

    ranks = sharded_selections(_ddp_setup, _ddp_configs)
    ds, model = _ddp_setup()
    for name, cfg in _ddp_configs().items():
        ref = select_subset(cfg, model, ds, epoch=1, device=torch.device("cpu")).to_dict()
        if cfg.selector == "gradmatch":
            assert ref["weights"].mean().item() == pytest.approx(1.0, rel=1e-5)
        for res in ranks:
            assert torch.equal(res[name]["indices"], ref["indices"]), name
            # OMP weights are real numbers: a shard's forward may differ from the full pass in the last ulp
            assert torch.allclose(res[name]["weights"], ref["weights"], rtol=1e-5), name
