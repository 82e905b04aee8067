"""`coreaug spectra` end to end on digits with a tiny MLP and a few dozen examples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coreaug.cli import main


def test_spectra_cli_writes_json_and_npz(tmp_path, capsys):
    out = tmp_path / "spec"
    rc = main([
        "spectra", "--model", "mlp", "-n", "24", "--params", "last", "--perturb", "random,worst",
        "--pgd-steps", "2", "--augment", "cropflip", "--rank", "4", "--seed", "3", "--out", str(out),
        "--no-progress", "--device", "cpu",
    ])
    assert rc == 0
    report = json.loads((out / "spectra.json").read_text())
    assert report["num_examples"] == 24 and report["dataset"] == "digits"
    assert report["num_params"] == 128 * 10 + 10  # fc of the MLP (hidden 128 → 10 classes)
    assert set(report["conditions"]) == {"random-l2-eps0.5", "worst-l2-eps0.5", "augment-cropflip"}
    assert len(report["example_indices"]) == 24
    for name, cond in report["conditions"].items():
        assert all(check["holds"] for check in cond["checks"].values()), name
        assert len(cond["principal_angles_top_r_deg"]) == 4
        # appending copies never shrinks a singular value (σ_i([J; J̃]) ≥ σ_i(J))
        assert cond["checks"]["stacked"]["details"]["monotone"]
    rnd = report["conditions"]["random-l2-eps0.5"]
    assert rnd["delta_l2_max"] <= 0.5 + 1e-6
    arrays = np.load(out / "spectra.npz")
    s = arrays["sigma_clean"]
    assert s.shape == (24,) and np.all(np.diff(s) <= 1e-9)
    stacked = arrays["random_l2_eps0p5__sigma_stacked"]
    assert stacked.shape == (48,) and np.all(stacked[:24] >= s - 1e-9)
    assert "bounds hold: True" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["--eps", "-1"],
    ["--params", "nope.weight"],
    ["--perturb", "sideways"],
    ["--perturb", "none"],
    ["-n", "0"],
    ["--checkpoint", "does/not/exist.pt"],
])
def test_spectra_cli_bad_input_exits_2(tmp_path, capsys, argv):
    rc = main(["spectra", "--model", "mlp", "-n", "8", "--no-progress", "--out", str(tmp_path / "o"), *argv])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("coreaug: error:")
    assert not (tmp_path / "o" / "spectra.json").exists()


def test_spectra_cli_loads_checkpoint(tmp_path):
    import torch

    from coreaug.models import build_model

    torch.manual_seed(11)
    model = build_model("mlp", 10, in_channels=1, image_size=8)
    with torch.no_grad():
        model.fc.weight.mul_(3.0)
    ckpt = tmp_path / "checkpoint.pt"
    torch.save({"model": model.state_dict()}, ckpt)
    common = ["spectra", "--model", "mlp", "-n", "8", "--params", "fc.weight", "--no-progress", "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "a"), "--checkpoint", str(ckpt)]) == 0
    assert main([*common, "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "spectra.json").read_text())
    b = json.loads((tmp_path / "b" / "spectra.json").read_text())
    assert a["checkpoint"] == str(ckpt) and b["checkpoint"] is None
    assert a["clean"]["sigma_max"] != pytest.approx(b["clean"]["sigma_max"], rel=1e-3)
    # wrong architecture for the weights → one-line error, exit 2
    assert main(["spectra", "--model", "cnn", "-n", "8", "--no-progress", "--out", str(tmp_path / "c"),
                 "--checkpoint", str(ckpt)]) == 2
