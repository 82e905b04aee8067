"""Spectral diagnostics during training: values equal spectra on the checkpointed model, ξ = 0 for the
whole probe, kill + resume == uninterrupted (and diagnostics never change the run), full-data runs,
bad K / N, TensorBoard, report and DDP-free plumbing."""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import pandas as pd
import pytest
import torch

import spectra
from coreaug.cli import main
from coreaug.errors import ConfigError
from coreaug.io import load_checkpoint
from coreaug.models import build_model
from coreaug.train import resolve_config, train
from coreaug.train.diagnostics import (
    CSV_FIELDS, TrainingDiagnostics, draw_probe, probe_diagnostics, read_diagnostics, spectrum_from_gram,
)
from coreaug.train.loop import prepare_data

TINY = {"model": "mlp", "epochs": 3, "batch_size": 64, "fraction": 0.3, "lr": 0.05, "milestones": [],
        "device": "cpu", "strong_aug": "gaussian-noise", "diagnostics_every": 1, "diagnostics_probe": 60}


def tiny(**kw):
    return resolve_config("digits-quick", overrides={**TINY, **kw})


def _probe_tensors(cfg, indices):
    _, views = prepare_data(cfg)
    probe = draw_probe(views["eval_train"], views["strong"], cfg.diagnostics_probe, seed=cfg.seed)
    assert torch.equal(probe.indices, torch.as_tensor(indices))  # the logged probe is the seeded draw
    return probe


def _model_at(run_dir):
    ck = load_checkpoint(run_dir / "checkpoint.pt")
    model = build_model("mlp", 10, in_channels=1, image_size=8)
    model.load_state_dict(ck["model"])
    return model.eval(), ck["epoch"]


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A run stopped after epoch 2 of 3 (diagnostics every epoch), as if killed."""
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("diag") / "r"
    train(tiny(), d, quiet=True, stop_after_epoch=2)
    return d


@pytest.fixture(scope="module")
def fullaug_run(tmp_path_factory):
    """A one-epoch full-aug run (no subset) with diagnostics; its results."""
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("diag_full") / "full-aug"
    return d, train(tiny(method="full-aug", epochs=1, diagnostics_probe=30), d, quiet=True)


def test_logged_spectrum_equals_spectra_on_checkpointed_model(stopped_run):
    rows = read_diagnostics(stopped_run)
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    model, epoch = _model_at(stopped_run)
    assert epoch == 2
    row = rows[-1]
    cfg = tiny()
    probe = _probe_tensors(cfg, row["probe_indices"])
    counts = torch.bincount(probe.y, minlength=10)
    assert counts.tolist() == [6] * 10  # stratified
    # direct SVD of the materialised classifier Jacobian (true-class logit), not through the Gram
    J = spectra.jacobian(model, probe.x, targets=probe.y, params=["fc"], dtype=torch.float64)
    Ja = spectra.jacobian(model, probe.x_aug, targets=probe.y, params=["fc"], dtype=torch.float64)
    s, s_app = spectra.singular_values(J), spectra.singular_values(torch.cat([J, Ja]))
    # the run takes the classifier's inputs from the model's own float32 forward pass (then float64):
    # J differs from this all-float64 one by ~1e-7 relative, hence the tolerance
    tol = dict(rtol=1e-6, atol=1e-6 * float(s[0]))
    torch.testing.assert_close(torch.tensor(row["sigma"], dtype=torch.float64), s, **tol)
    torch.testing.assert_close(torch.tensor(row["sigma_appended"], dtype=torch.float64), s_app, **tol)
    assert row["sv_top1"] == pytest.approx(float(s[0]), rel=1e-6) and row["sv_bottom1"] == pytest.approx(float(s[-1]), rel=1e-5)
    assert row["rank"] == 60 and row["cond"] == pytest.approx(float(s[0] / s[-1]), rel=1e-6)
    assert row["eff_rank"] == pytest.approx(spectra.effective_rank(torch.tensor(row["sigma"], dtype=torch.float64)), rel=1e-12)
    assert row["eff_rank"] == pytest.approx(spectra.effective_rank(s), rel=1e-6)
    # figure 1's shift: σ([J; J̃]) vs σ([J; J]) = √2 σ(J)
    summ = spectra.shift_summary(math.sqrt(2) * s, s_app[:60], frac=0.1)
    assert row["shift_bottom10"] == pytest.approx(summ["bottom_rel_change"], abs=1e-6)
    assert row["shift_top10"] == pytest.approx(summ["top_rel_change"], abs=1e-6)
    # figure 2's rotation from explicit right singular vectors
    V = spectra.exact_svd(J, method="svd").V
    Vb = spectra.exact_svd(torch.cat([J, Ja]), method="svd").V
    ang = float(torch.rad2deg(spectra.principal_angles(V[:, :10], Vb[:, :10]).max()))
    assert row["angle_rank"] == 10 and row["angle_max_deg"] == pytest.approx(ang, abs=1e-5)
    # ξ of the logged subsets from the materialised all-logit Jacobian (figure 3's quantity)
    assert row["subset_size"] == 20 and len(row["subset_indices"]) == 20
    for tag, x in (("clean", probe.x), ("aug", probe.x_aug)):
        Jall = spectra.jacobian(model, x, params=["fc"], dtype=torch.float64)
        with torch.no_grad():
            r = spectra.residuals(model(x).double(), probe.y)
        res = spectra.alignment_errors(Jall, r, {"s": (row["subset_indices"], row["subset_weights"]),
                                                 "r": (row["random_indices"], None)}, scale="mean")
        assert row[f"xi_subset_{tag}"] == pytest.approx(res[0]["xi_relative"], rel=1e-5)
        assert row[f"xi_random_{tag}"] == pytest.approx(res[1]["xi_relative"], rel=1e-5)
    # the CSV holds the same scalars
    df = pd.read_csv(stopped_run / "diagnostics.csv")
    assert list(df.columns) == list(CSV_FIELDS) and len(df) == 3
    assert df.iloc[-1]["cond"] == pytest.approx(row["cond"]) and (df["time"] > 0).all()


def test_kill_and_resume_gives_the_uninterrupted_rows_and_diagnostics_do_not_change_training(stopped_run, tmp_path):
    full = train(tiny(), tmp_path / "full", quiet=True)
    # simulate a kill after a diagnostics write but before that epoch's checkpoint: a stale row for epoch 3
    jl = stopped_run / "diagnostics.jsonl"
    stale = json.loads(jl.read_text().splitlines()[-1]) | {"epoch": 3, "cond": -1.0}
    jl.write_text(jl.read_text() + json.dumps(stale) + "\n")
    resumed = train(tiny(), stopped_run, resume=True, quiet=True)
    a, b = read_diagnostics(tmp_path / "full"), read_diagnostics(stopped_run)
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b] == [0, 1, 2, 3]
    strip = [{k: v for k, v in r.items() if k != "time"} for r in a]
    assert strip == [{k: v for k, v in r.items() if k != "time"} for r in b]
    csv_a = pd.read_csv(tmp_path / "full" / "diagnostics.csv").drop(columns="time")
    pd.testing.assert_frame_equal(csv_a, pd.read_csv(stopped_run / "diagnostics.csv").drop(columns="time"))
    # the same run without diagnostics trains identically; the time is reported separately
    off = train(tiny(diagnostics_every=0), tmp_path / "off", quiet=True)
    for k in ("final_train_loss", "final_test_loss", "final_test_acc"):
        assert full[k] == off[k] == resumed[k], k
    assert not (tmp_path / "off" / "diagnostics.csv").exists() and off["diagnostics_time_total"] == 0
    assert full["diagnostics_time_total"] == pytest.approx(sum(r["time"] for r in a))
    assert full["wall_clock_total"] == pytest.approx(full["train_time_total"] + full["selection_time_total"])
    metrics = pd.read_csv(tmp_path / "full" / "metrics.csv")
    assert metrics["diagnostics_time"].sum() == pytest.approx(full["diagnostics_time_total"])


def _small_probe(n=40, aug=True):
    _, views = prepare_data(tiny())
    return draw_probe(views["eval_train"], views["strong"] if aug else None, n, seed=0)


def test_xi_is_zero_for_the_whole_probe_with_unit_weights():
    torch.manual_seed(0)
    model = build_model("mlp", 10, in_channels=1, image_size=8)
    probe = _small_probe()
    n = probe.y.numel()
    out = probe_diagnostics(model, probe, select_fn=lambda z, h, y: (torch.arange(n), torch.ones(n)),
                            random_fn=lambda y: (torch.arange(0, n, 2), torch.ones(n // 2)))
    assert out["xi_subset_clean"] == pytest.approx(0.0, abs=1e-12) and out["xi_subset_aug"] == pytest.approx(0.0, abs=1e-12)
    assert out["xi_random_clean"] > 1e-3 and out["xi_random_aug"] > 1e-3  # a half subset does not align exactly
    # non-unit weights on the whole set do not align either (mean-gradient form: weights matter)
    w = torch.linspace(0.5, 1.5, n)
    out2 = probe_diagnostics(model, probe, select_fn=lambda z, h, y: (torch.arange(n), w), random_fn=None)
    assert out2["xi_subset_clean"] > 1e-3 and "random_indices" not in out2


def test_run_selector_at_fraction_one_selects_the_whole_probe(tmp_path):
    cfg = tiny(fraction=1.0, diagnostics_probe=40)
    _, views = prepare_data(cfg)
    torch.manual_seed(0)
    row = TrainingDiagnostics.from_config(cfg, views, tmp_path, torch.device("cpu")).run(
        build_model("mlp", 10, in_channels=1, image_size=8), 0)
    assert row["subset_size"] == 40 and row["subset_weights"] == [1.0] * 40
    assert row["xi_subset_clean"] == pytest.approx(0.0, abs=1e-12) and row["xi_random_aug"] == pytest.approx(0.0, abs=1e-12)


def test_all_parameters_route_matches_a_direct_svd():
    torch.manual_seed(1)
    model = build_model("mlp", 10, in_channels=1, image_size=8)
    probe = _small_probe(30)
    out = probe_diagnostics(model, probe, params="all", gram_block_bytes=2**18)  # several Gram blocks
    J = spectra.jacobian(model, probe.x, targets=probe.y, dtype=torch.float64)
    Ja = spectra.jacobian(model, probe.x_aug, targets=probe.y, dtype=torch.float64)
    s = spectra.singular_values(J)
    torch.testing.assert_close(out["sigma"], s, rtol=1e-7, atol=1e-9 * float(s[0]))
    V, Vb = spectra.exact_svd(J, method="svd").V, spectra.exact_svd(torch.cat([J, Ja]), method="svd").V
    ang = float(torch.rad2deg(spectra.principal_angles(V[:, :10], Vb[:, :10]).max()))
    assert out["num_params"] == 9610 and out["angle_max_deg"] == pytest.approx(ang, abs=1e-5)
    assert out["xi_subset_clean"] is None  # no selector: a full-data run


def test_block_diagonal_gram_shortcut_is_exact():
    g = torch.Generator().manual_seed(0)
    y = torch.tensor([0, 1, 0, 2, 1, 0, 2, 2])
    A = torch.randn(8, 5, dtype=torch.float64, generator=g)
    G = (A @ A.T) * (y[:, None] == y[None, :])  # block-diagonal by class (after permutation)
    GJ = torch.block_diag(G, G * 0.5) + 0.0
    GJ[:8, 8:] = G * 0.3
    GJ[8:, :8] = G * 0.3
    fast = spectrum_from_gram(GJ, G, groups=y, r=3)
    slow = spectrum_from_gram(GJ, G, groups=None, r=3)
    torch.testing.assert_close(fast["sigma"], slow["sigma"])
    torch.testing.assert_close(fast["sigma_appended"], slow["sigma_appended"])
    assert fast["angle_max_deg"] == pytest.approx(slow["angle_max_deg"], abs=1e-6)
    # not block-diagonal by these groups: falls back to the full eigendecomposition
    G2 = A @ A.T
    torch.testing.assert_close(spectrum_from_gram(None, G2, groups=y)["sigma"], spectra.svd_from_gram(G2).S)


def test_full_aug_run_logs_spectrum_and_shift_but_no_xi(fullaug_run):
    d, res = fullaug_run
    df = pd.read_csv(d / "diagnostics.csv")
    assert df["epoch"].tolist() == [0, 1]
    assert df["cond"].notna().all() and df["shift_bottom10"].notna().all() and df["angle_max_deg"].notna().all()
    for c in ("subset_size", "xi_subset_clean", "xi_random_clean", "xi_subset_aug", "xi_random_aug"):
        assert df[c].isna().all(), c
    assert res["diagnostics_time_total"] > 0


def _cli(*args):
    return main(["train", *args, "--threads", "1"])


@pytest.mark.parametrize("args, match", [
    (["--diagnostics-every", "-1"], "diagnostics interval K must be an integer >= 0"),
    (["--diagnostics-probe", "1"], "probe size N must be an integer >= 2"),
    (["--diagnostics-probe", "5000"], "exceeds the 1437 training examples"),
])
def test_bad_k_and_n_give_one_line_errors_and_write_nothing(tmp_path, capsys, args, match):
    out = tmp_path / "run"
    rc = _cli("--preset", "digits-quick", "--model", "mlp", "--epochs", "1", *args, "--quiet", "--out", str(out))
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("coreaug: error:") and "\n" not in err and match in err
    assert not out.exists()


@pytest.mark.parametrize("value", [2.5, True, "4"])
def test_bad_k_in_a_config_is_a_config_error(value):
    with pytest.raises(ConfigError, match="diagnostics_every must be an integer"):
        resolve_config("digits-quick", overrides={"diagnostics_every": value})


def test_tensorboard_without_the_package_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    out = tmp_path / "run"
    rc = _cli("--preset", "digits-quick", "--model", "mlp", "--epochs", "1", "--tensorboard", str(tmp_path / "tb"),
              "--quiet", "--out", str(out))
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("coreaug: error:") and "\n" not in err and 'pip install -e ".[tb]"' in err
    assert not out.exists()


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed")
def test_tensorboard_streams_metrics_and_diagnostics(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tiny(epochs=2, diagnostics_probe=30), tmp_path / "r", quiet=True, tensorboard=tmp_path / "tb")
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert [e.step for e in acc.Scalars("metrics/test_acc")] == [1, 2]
    assert [e.step for e in acc.Scalars("diagnostics/cond")] == [0, 1, 2]
    logged = [e.value for e in acc.Scalars("diagnostics/xi_subset_aug")]
    assert logged == pytest.approx([r["xi_subset_aug"] for r in read_diagnostics(tmp_path / "r")], rel=1e-6)
    assert "diagnostics/sigma" in acc.Tags()["histograms"] and "metrics/diagnostics_time" in tags


def test_report_draws_diagnostics_per_run(fullaug_run, tmp_path):
    from coreaug.report import diagnostics_frame, load_run, write_report

    full = fullaug_run[0]
    nodiag = tmp_path / "nodiag"
    train(tiny(epochs=1, diagnostics_every=0), nodiag, quiet=True)
    runs = [load_run(d) for d in (full, nodiag)]
    assert runs[1]["diagnostics"].empty
    df = diagnostics_frame(runs)
    assert set(df["run"]) == {str(full)} and len(df) == 2
    paths = write_report([full, nodiag], tmp_path / "rep")
    assert paths["diagnostics_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(pd.read_csv(paths["diagnostics_csv"])) == 2
    paths = write_report([nodiag], tmp_path / "rep2")
    assert "diagnostics_png" not in paths and not (tmp_path / "rep2" / "diagnostics.png").exists()
    # figure 6 from given run folders: only those with diagnostics are drawn
    from coreaug.figures import make_figures

    written = make_figures(tmp_path / "figs", only=["fig6_training_diagnostics"], runs=[full, nodiag], log=lambda _: None)
    names = sorted(p.name for p in written["fig6_training_diagnostics"])
    assert names == sorted(f"fig6_training_diagnostics.{e}" for e in ("csv", "json", "pdf", "png"))
    summary = json.loads((tmp_path / "figs" / "fig6_training_diagnostics.json").read_text())
    assert list(summary["per_run"]) == ["full-aug"] and summary["per_run"]["full-aug"]["xi_subset_aug_mean"] is None
    with pytest.raises(ConfigError, match="none of --runs has diagnostics"):
        make_figures(tmp_path / "figs2", only=["fig6_training_diagnostics"], runs=[nodiag], log=lambda _: None)


@pytest.mark.cuda
def test_diagnostics_on_cuda_match_cpu(tmp_path):
    """Device-agnostic: a model on CUDA gives the CPU's diagnostics (float64 Gram on both)."""
    cfg = tiny(diagnostics_probe=40)
    _, views = prepare_data(cfg)
    torch.manual_seed(0)
    model = build_model("mlp", 10, in_channels=1, image_size=8)
    cpu = TrainingDiagnostics.from_config(cfg, views, tmp_path / "cpu", torch.device("cpu"))
    (tmp_path / "cpu").mkdir()
    (tmp_path / "gpu").mkdir()
    a = cpu.run(model, 0)
    gpu = TrainingDiagnostics.from_config(cfg, views, tmp_path / "gpu", torch.device("cuda"))
    b = gpu.run(model.to("cuda"), 0)
    for k in ("sv_top1", "sv_bottom1", "cond", "shift_bottom10", "angle_max_deg", "xi_random_clean", "xi_random_aug"):
        assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-6), k
    # the coreset may break float ties differently on the GPU's selection engine: same size, small ξ
    assert b["subset_size"] == a["subset_size"] and b["xi_subset_clean"] < b["xi_random_clean"] * 3


def test_every_selector_runs_its_selection_step_on_the_probe(tmp_path):
    """ξ's subset comes from the run's own selection step, whatever the selector (forgetting reads
    the run's history restricted to the probe)."""
    from coreaug.select import ForgettingTracker
    from coreaug.train.config import SELECTORS

    cfg0 = tiny(diagnostics_probe=40)
    _, views = prepare_data(cfg0)
    torch.manual_seed(0)
    model = build_model("mlp", 10, in_channels=1, image_size=8)
    history = ForgettingTracker(len(views["eval_train"]))
    history.update(torch.arange(1437), torch.arange(1437) % 3 == 0)
    for i, sel in enumerate(SELECTORS):
        cfg = tiny(diagnostics_probe=40, selector=sel)
        row = TrainingDiagnostics.from_config(cfg, views, tmp_path / str(i), torch.device("cpu")).run(model, 0, history=history)
        assert row["subset_size"] and math.isfinite(row["xi_subset_clean"]) and math.isfinite(row["xi_subset_aug"]), sel
        assert all(0 <= j < 40 for j in row["subset_indices"]), sel


def test_a_diverged_model_gives_an_empty_row_not_an_error(tmp_path):
    """With allow_nonfinite a run may keep training with NaN weights: the diagnostics row stays empty."""
    cfg = tiny(diagnostics_probe=30)
    _, views = prepare_data(cfg)
    model = build_model("mlp", 10, in_channels=1, image_size=8)
    with torch.no_grad():
        model.fc.weight.fill_(float("nan"))
    row = TrainingDiagnostics.from_config(cfg, views, tmp_path, torch.device("cpu")).run(model, 0)
    assert "not finite" in row["error"] and row.get("cond") is None
    df = pd.read_csv(tmp_path / "diagnostics.csv")
    assert df["epoch"].tolist() == [0] and df["cond"].isna().all()
    assert json.loads((tmp_path / "diagnostics.jsonl").read_text())["error"] == row["error"]
