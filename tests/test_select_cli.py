"""`coreaug select` on the embedded digits data."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from coreaug.cli import main
from coreaug.data import load_data
from coreaug.io import save_checkpoint
from coreaug.models import build_model



def test_select_coreset_json_and_checkpoint(tmp_path, capsys):
    out = tmp_path / "sel.json"
    assert main(["select", "--model", "mlp", "--fraction", "0.1", "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    targets = load_data("digits").train.targets
    n = len(targets)
    assert d["size"] == len(d["indices"]) == len(d["weights"]) == len(d["labels"]) == int(0.1 * n)
    assert d["indices"] == sorted(set(d["indices"]))
    assert sum(d["weights"]) == n  # cluster sizes
    assert d["labels"] == [int(targets[i]) for i in d["indices"]]
    assert sum(d["budgets"]) == d["size"]

    torch.manual_seed(1)
    model = build_model("mlp", 10, in_channels=1, image_size=8)
    ckpt = tmp_path / "ckpt.pt"
    save_checkpoint(ckpt, {"model": model.state_dict(), "epoch": 3})
    out2 = tmp_path / "sel2.pt"
    assert main(["select", "--model", "mlp", "--checkpoint", str(ckpt), "--normalize-weights",
                 "--per-class", "equal", "--out", str(out2)]) == 0
    p = torch.load(out2, weights_only=False)
    assert p["weights"].mean().item() == pytest.approx(1.0, rel=1e-5)
    assert p["indices"].numel() == int(0.1 * n) and p["checkpoint"] == str(ckpt)
    assert "selected" in capsys.readouterr().out


def test_select_random_and_maxloss_csv(tmp_path):
    out = tmp_path / "r.csv"
    assert main(["select", "--method", "random", "--budget", "50", "--seed", "3", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 50 and all(float(r["weight"]) == 1.0 for r in rows)
    out2 = tmp_path / "m.csv"
    assert main(["select", "--method", "maxloss", "--model", "mlp", "--fraction", "0.05", "--out", str(out2)]) == 0
    assert len(list(csv.DictReader(out2.open()))) == int(0.05 * 1437)


def test_select_errors_exit_2(tmp_path, capsys):
    assert main(["select", "--fraction", "1.5", "--method", "random", "--out", str(tmp_path / "a.json")]) == 2
    assert "fraction" in capsys.readouterr().err
    assert main(["select", "--method", "kmeans", "--model", "mlp", "--out", str(tmp_path / "a.json")]) == 2
    assert "kmeans" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    save_checkpoint(bad, {"model": build_model("cnn", 10, in_channels=1, image_size=8).state_dict()})
    assert main(["select", "--model", "mlp", "--checkpoint", str(bad), "--out", str(tmp_path / "a.json")]) == 2
    assert "does not fit" in capsys.readouterr().err
    assert not (tmp_path / "a.json").exists()
