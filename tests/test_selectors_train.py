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


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
