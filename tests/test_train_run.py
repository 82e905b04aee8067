"""Training runs on digits (tiny MLP configs): reselection, resume == uninterrupted, run folder, CLI, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from coreaug.cli import main
from coreaug.io import load_checkpoint
from coreaug.train import resolve_config, train
from coreaug.train import loop as loop_mod

TINY = {"model": "mlp", "epochs": 2, "batch_size": 64, "fraction": 0.1, "lr": 0.05, "milestones": [],
        "device": "cpu", "strong_aug": "gaussian-noise"}


def tiny(**kw):
    return resolve_config("digits-quick", overrides={**TINY, **kw})


def test_reselection_at_epochs_0_R_2R_from_eval_mode_unaugmented_proxies(tmp_path, monkeypatch):
    import coreaug.proxies as proxies_mod

    calls = []
    real = proxies_mod.compute_proxies

    def spy(model, dataset, **kw):
        x1, _, _ = dataset[3]
        x2, _, _ = dataset[3]
        calls.append({"n": len(dataset), "training_before": model.training, "deterministic": torch.equal(x1, x2)})
        p = real(model, dataset, **kw)
        calls[-1]["training_after"] = model.training
        return p

    monkeypatch.setattr(proxies_mod, "compute_proxies", spy)
    rows = []
    # diagnostics off: they run the selection step on their probe too (tests/test_diagnostics.py)
    res = train(tiny(epochs=5, reselect_every=2, strong_aug="randaugment", diagnostics_every=0), tmp_path / "r",
                quiet=True, on_epoch_end=rows.append)
    assert [r["epoch"] - 1 for r in rows if r["reselected"]] == [0, 2, 4]
    assert len(calls) == 3 and res["n_selections"] == 3
    for c in calls:
        assert c["n"] == 1437  # all n training points
        assert c["deterministic"]  # test-time transform: no augmentation in the proxy pass
        assert c["training_before"] and c["training_after"]  # compute_proxies restores train mode
    assert all(r["selection_time"] > 0 for r in rows if r["reselected"])
    assert all(r["selection_time"] == 0 for r in rows if not r["reselected"])


@pytest.mark.parametrize("method, selector", [("subset-only", "coreset"), ("random+aug-subset", "maxloss"),
                                              ("full+aug-subset", "random")])
def test_epoch_sizes_and_subsets_in_real_runs(tmp_path, method, selector):
    res = train(tiny(epochs=1, method=method, selector=selector), tmp_path / "r", quiet=True)
    ck = load_checkpoint(tmp_path / "r" / "checkpoint.pt")
    sub = ck["subset"]
    k = sub["indices"].numel()
    assert k == 150  # equal-ceil per-class budgets: ceil(int(0.1 * 1437) / 10) = 15 per class
    assert sub["indices"].unique().numel() == k
    if selector == "coreset":
        assert sub["weights"].mean().item() == pytest.approx(1.0, rel=1e-5)  # γ normalised to mean 1
        assert not torch.all(sub["weights"] == 1)
    else:
        assert torch.all(sub["weights"] == 1)
    expected = {"subset-only": 2 * k, "random+aug-subset": 2 * k, "full+aug-subset": 1437 + k}[method]
    assert res["examples_seen_total"] == expected
    if method == "random+aug-subset":
        assert sub["random_main"].numel() == k


def _same_rows(a, b):
    keys = ("train_loss", "train_acc", "test_loss", "test_acc", "subset_size", "epoch_examples", "reselected", "steps")
    assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b]


@pytest.mark.parametrize("method, stop", [("subset-only", 2), ("random+aug-subset", 1)])
def test_resume_matches_uninterrupted_run(tmp_path, method, stop):
    cfg = tiny(epochs=4, reselect_every=3, method=method, strong_aug="randaugment", weak_aug="crop",
               milestones=[2], seed=5)
    full = train(cfg, tmp_path / "full", quiet=True)
    part = train(cfg, tmp_path / "part", quiet=True, stop_after_epoch=stop)
    assert not part["completed"] and part["epochs_done"] == stop
    assert not (tmp_path / "part" / "results.json").exists()
    resumed = train(cfg, tmp_path / "part", resume=True, quiet=True)
    assert resumed["completed"] and resumed["epochs_done"] == 4
    for k in ("final_test_acc", "final_test_loss", "final_train_loss", "best_test_acc", "examples_seen_total"):
        assert resumed[k] == full[k], k
    rows_full = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    rows_res = [json.loads(line) for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    _same_rows(rows_full, rows_res)
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "part" / "checkpoint.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert torch.equal(a["subset"]["indices"], b["subset"]["indices"])


def test_different_seeds_differ_same_seed_repeats(tmp_path):
    a = train(tiny(epochs=1, seed=1), tmp_path / "a", quiet=True)
    b = train(tiny(epochs=1, seed=1), tmp_path / "b", quiet=True)
    c = train(tiny(epochs=1, seed=2), tmp_path / "c", quiet=True)
    assert a["final_train_loss"] == b["final_train_loss"]
    assert a["final_train_loss"] != c["final_train_loss"]


def _cli(*args):
    return main(["train", *args, "--threads", "1"])


def test_cli_train_writes_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    rc = _cli("--preset", "digits-quick", "--model", "mlp", "--epochs", "2", "--fraction", "0.1",
              "--strong-aug", "gaussian-noise", "--batch-size", "64", "--quiet", "--out", str(out))
    assert rc == 0
    assert "done: subset-only (coreset, 0.1)" in capsys.readouterr().out
    for name in ("config.json", "metrics.csv", "metrics.jsonl", "results.json", "checkpoint.pt"):
        assert (out / name).is_file(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["method"] == "subset-only" and cfg["epochs"] == 2 and cfg["fraction"] == 0.1
    lines = (out / "metrics.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch,lr,train_loss")
    res = json.loads((out / "results.json").read_text())
    assert res["completed"] and 0.0 <= res["final_test_acc"] <= 1.0
    assert res["wall_clock_total"] == pytest.approx(res["train_time_total"] + res["selection_time_total"])
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temp files
    # --resume of a finished run re-reads config.json and changes nothing material
    assert _cli("--resume", "--quiet", "--out", str(out)) == 0
    assert json.loads((out / "results.json").read_text())["final_test_acc"] == res["final_test_acc"]


@pytest.mark.parametrize(
    "args, match",
    [
        (["--preset", "nope"], "unknown preset"),
        (["--preset", "digits-quick", "--method", "magic"], "unknown method"),
        (["--preset", "digits-quick", "--selector", "kmeans"], "unknown selector"),
        (["--preset", "digits-quick", "--strong-aug", "mixup"], "unknown strong augmentation"),
        (["--preset", "digits-quick", "--fraction", "0"], "fraction"),
        (["--preset", "digits-quick", "--fraction", "1.01"], "fraction"),
        (["--preset", "digits-quick", "--reselect-every", "0"], "R must be"),
        (["--preset", "cifar10-resnet20", "--data-root", "/nonexistent/cifar"], "cifar"),
        (["--preset", "cifar10-resnet20"], "--data-root"),
    ],
)
def test_cli_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, args, match):
    out = tmp_path / "run"
    assert _cli(*args, "--quiet", "--out", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("coreaug: error:") and "\n" not in err and match in err
    assert not out.exists()


def test_refuses_non_empty_run_dir_and_foreign_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("earlier run")
    base = ["--preset", "digits-quick", "--model", "mlp", "--epochs", "1", "--fraction", "0.1",
            "--strong-aug", "gaussian-noise", "--quiet"]
    assert _cli(*base, "--out", str(out)) == 2
    assert "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "earlier run"
    # a finished run, then --resume with another configuration: CheckpointError, nothing changes
    run = tmp_path / "run2"
    assert _cli(*base, "--out", str(run)) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    assert _cli(*base, "--lr", "0.5", "--resume", "--out", str(run)) == 2
    err = capsys.readouterr().err
    assert "another configuration" in err and err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    # --resume with nothing to resume (a full command line would start the run: test_nothing_lost.py)
    assert _cli("--resume", "--quiet", "--out", str(tmp_path / "empty")) == 2
    assert "cannot resume" in capsys.readouterr().err


def test_label_noise_run(tmp_path):
    res = train(tiny(epochs=1, label_noise=0.3), tmp_path / "r", quiet=True)
    assert res["label_noise"] == 0.3 and res["completed"]
    views = loop_mod.prepare_data(tiny(label_noise=0.3))[1]
    assert 0.25 < views["flipped"].float().mean().item() < 0.35


def test_amp_is_a_warned_no_op_on_cpu(tmp_path):
    with pytest.warns(UserWarning, match="no effect on CPU"):
        res = train(tiny(epochs=1, amp=True, method="full"), tmp_path / "r", quiet=True)
    assert res["completed"] and res["selector"] is None and res["fraction"] == 1.0


def test_cli_interrupted_then_resumed_equals_uninterrupted(tmp_path, capsys):
    base = ["--preset", "digits-quick", "--model", "mlp", "--epochs", "3", "--fraction", "0.1", "--reselect-every", "2",
            "--batch-size", "64", "--quiet"]
    assert _cli(*base, "--out", str(tmp_path / "a")) == 0
    assert _cli(*base, "--stop-after-epoch", "1", "--out", str(tmp_path / "b")) == 0
    assert "stopped after epoch 1" in capsys.readouterr().out
    assert not (tmp_path / "b" / "results.json").exists()
    assert _cli("--resume", "--quiet", "--out", str(tmp_path / "b")) == 0  # config re-read from config.json
    ra = json.loads((tmp_path / "a" / "results.json").read_text())
    rb = json.loads((tmp_path / "b" / "results.json").read_text())
    for k in ("final_test_acc", "final_test_loss", "final_train_loss", "best_test_acc", "n_selections"):
        assert ra[k] == rb[k], k


def test_default_run_folder_is_fresh_and_never_overwrites(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    base = ["--preset", "digits-quick", "--model", "mlp", "--epochs", "1", "--fraction", "0.1",
            "--strong-aug", "gaussian-noise", "--quiet"]
    assert _cli(*base) == 0
    assert _cli(*base) == 0
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["digits-quick", "digits-quick-2"]
    assert all((tmp_path / "runs" / r / "results.json").is_file() for r in runs)
    assert _cli(*base, "--resume") == 2  # resuming needs an explicit --out
    assert "--out is required" in capsys.readouterr().err


def test_resume_in_the_other_loader_mode_warns_and_any_two_worker_counts_agree(tmp_path):
    """Workers seed each item's augmentation on its own, so 1 and 2 workers train alike; in-process
    loading draws from one per-epoch stream, so resuming across the two modes warns (like threads)."""
    import warnings

    from coreaug.train import loop, resolve_config

    def cfg(workers):
        return resolve_config("digits-quick", overrides={"model": "mlp", "epochs": 2, "fraction": 0.1, "device": "cpu",
                                                        "diagnostics_every": 0, "threads": 1, "num_workers": workers,
                                                        "strong_aug": "gaussian-noise"})

    one = loop.train(cfg(1), tmp_path / "w1", quiet=True)
    two = loop.train(cfg(2), tmp_path / "w2", quiet=True)
    assert one["final_test_acc"] == two["final_test_acc"] and one["final_train_loss"] == two["final_train_loss"]
    loop.train(cfg(0), tmp_path / "w0", quiet=True, stop_after_epoch=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop.train(cfg(1), tmp_path / "w0", quiet=True, resume=True)
    assert any("loader workers" in str(w.message) for w in caught)


def test_a_callers_observer_sees_every_step_and_adds_a_metrics_column(tmp_path):
    """The observer interface from outside: a gradient-norm logger, written as a user would, gets each
    step's batch (loss included) and adds a column to metrics.jsonl; the run's weights do not change."""
    from coreaug.train.observers import Observer

    class GradNorm(Observer):
        def __init__(self):
            self.norms, self.weighted_loss, self.count = [], 0.0, 0

        def on_batch_end(self, trainer, batch):
            grads = [p.grad for p in trainer.raw_model.parameters() if p.grad is not None]
            self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
            self.weighted_loss += float(batch.loss) * batch.y.numel()
            self.count += batch.y.numel()

        def row_fields(self, trainer, epoch):
            out = {"grad_norm_max": max(self.norms), "mean_batch_loss": self.weighted_loss / self.count}
            self.norms, self.weighted_loss, self.count = [], 0.0, 0
            return out

    cfg = tiny(epochs=2)
    plain = train(cfg, tmp_path / "plain", quiet=True)
    observed = train(cfg, tmp_path / "observed", quiet=True, observers=[GradNorm()])
    rows = [json.loads(line) for line in (tmp_path / "observed" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["grad_norm_max"] > 0 for r in rows)
    for r in rows:  # the epoch's train loss is the example-weighted mean of its batch losses
        assert r["mean_batch_loss"] == pytest.approx(r["train_loss"], rel=1e-9)
    assert observed["final_test_acc"] == plain["final_test_acc"]
    a = load_checkpoint(tmp_path / "plain" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "observed" / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
