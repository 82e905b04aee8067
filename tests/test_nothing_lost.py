"""Issue 21 "Nothing lost, nothing counted twice": the cases of items 7, 9–16, each one line (or the right
result), nothing written that should not be. Runs are 1–2 epoch MLPs on digits, shared where they are only read."""

from __future__ import annotations

import errno
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from coreaug.cli import main
from test_cli_errors import _one_error_line  # noqa: E402 (one helper for one-line errors)
from coreaug.errors import CheckpointError, ConfigError, OutputError
from coreaug.io import load_checkpoint, save_checkpoint

TRAIN = ["train", "--preset", "digits-quick", "--model", "mlp", "--epochs", "1", "--fraction", "0.1",
         "--strong-aug", "gaussian-noise", "--batch-size", "64", "--quiet", "--threads", "1",
         "--diagnostics-every", "0"]


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file in ``folder`` with its bytes and mtime (a rewrite with equal bytes still shows)."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 1-epoch run (read-only for the tests: copy it before changing anything)."""
    out = tmp_path_factory.mktemp("done") / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    return out


def _copy(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


# ------------------------------------------------------------------ 15: checkpoints never run code
class _Payload:
    """Unpickling this runs ``touch <sentinel>`` (what a crafted --checkpoint / --weights / checkpoint.pt does)."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return os.system, (f"touch {self.sentinel}",)


def test_crafted_pickle_is_refused_with_one_line_and_does_not_run(tmp_path, capsys, finished):
    sentinel = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    torch.save({"model": {"fc.weight": torch.zeros(2)}, "x": _Payload(sentinel)}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    # the CLI paths: `select --checkpoint`, and a resumed run's checkpoint.pt
    assert main(["select", "--model", "mlp", "--checkpoint", str(evil), "--out", str(tmp_path / "s.json")]) == 2
    _one_error_line(capsys, "refused to load it")
    run = _copy(finished, tmp_path / "run")
    (run / "results.json").unlink()
    shutil.copy(evil, run / "checkpoint.pt")
    assert main(["train", "--out", str(run), "--resume"]) == 2
    _one_error_line(capsys, "refused to load it")
    assert not sentinel.exists()
    assert not (tmp_path / "s.json").exists()


def test_checkpoints_of_the_current_and_the_previous_format_load_weights_only(tmp_path, finished):
    from coreaug.train.checkpoint import REQUIRED_KEYS, set_rng_state

    state = load_checkpoint(finished / "checkpoint.pt")  # weights_only=True
    assert set(REQUIRED_KEYS) <= set(state)
    assert isinstance(state["rng"]["numpy"][1], torch.Tensor)  # stored as a tensor, not a numpy array
    # the previous format stored numpy's state as an array: it still loads and restores
    np.random.seed(3)
    random.seed(3)
    old = tmp_path / "old.pt"
    save_checkpoint(old, {"rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                                  "python": random.getstate()}})
    expected = (np.random.rand(), random.random())
    set_rng_state(load_checkpoint(old)["rng"])
    assert (np.random.rand(), random.random()) == expected


# ------------------------------------------------------------------ 7: scientific notation
def test_scientific_notation_in_yaml_and_overrides_is_a_number(tmp_path):
    from coreaug.train.config import read_config_file, resolve_config

    path = tmp_path / "c.yaml"
    path.write_text("preset: digits-quick\nweight_decay: 5e-4\nlr: 1E-2\nmilestones: [1e1, 2e1]\n")
    assert read_config_file(path)["weight_decay"] == 5e-4
    cfg = resolve_config(None, path, {"momentum": "8.5e-1", "epochs": "3e0"})  # --set momentum=8.5e-1 (sweep)
    assert (cfg.weight_decay, cfg.lr, cfg.momentum, cfg.epochs, cfg.milestones) == (5e-4, 1e-2, 0.85, 3, [10, 20])
    for bad in ("abc", "1e", "e5", "nan", "0x10", "0.1"):  # "0.1": YAML reads a number; quoted it stays text
        with pytest.raises(ConfigError, match="lr must be"):
            resolve_config("digits-quick", overrides={"lr": bad})


# ------------------------------------------------------------------ 11: wrong types, damaged files
def test_wrong_types_in_config_files_are_one_line(tmp_path, capsys):
    from coreaug.train.config import resolve_config

    cases = {"preset: [digits-quick]\n": "preset must be a preset name", "preset: 5\n": "preset must be a preset name",
             "preset: digits-quick\nmodel: mlp\nimage_size: 16\n": "image_size applies to image-folder datasets",
             "preset: digits-quick\nmodel: cnn\nimage_size: 16\n": "image_size applies to image-folder datasets"}
    for i, (text, match) in enumerate(cases.items()):
        path = tmp_path / f"c{i}.yaml"
        path.write_text(text)
        assert main(["train", "--config", str(path), "--out", str(tmp_path / "o")]) == 2
        _one_error_line(capsys, match)
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="config must be the path"):
        resolve_config("digits-quick", [1, 2])
    with pytest.raises(ConfigError, match="overrides must be a mapping"):
        resolve_config("digits-quick", None, [("lr", 1)])


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> Path:
    """A 2-epoch run stopped after its first checkpoint (read-only: copy it)."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    assert main([*TRAIN, "--epochs", "2", "--stop-after-epoch", "1", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("damage, match", [
    (lambda s: s.pop("model"), "lacks 'model'"),
    (lambda s: s.pop("rng"), "lacks 'rng'"),
    (lambda s: s["rng"].pop("numpy"), "lacks part of its RNG state"),
    (lambda s: s.__setitem__("metrics", "x"), "malformed 'metrics'"),
])
def test_checkpoint_missing_a_key_is_one_line_and_changes_nothing(tmp_path, capsys, stopped, damage, match):
    run = _copy(stopped, tmp_path / "run")
    state = load_checkpoint(run / "checkpoint.pt")
    damage(state)
    save_checkpoint(run / "checkpoint.pt", state)
    before = _snapshot(run)
    assert main(["train", "--out", str(run), "--resume"]) == 2
    _one_error_line(capsys, match)
    assert _snapshot(run) == before


def test_corrupt_diagnostics_jsonl_names_the_file(tmp_path):
    from coreaug.train.diagnostics import read_diagnostics

    (tmp_path / "diagnostics.jsonl").write_text('{"epoch": 0}\n{"epoch": 1, \n')
    with pytest.raises(CheckpointError, match=r"diagnostics\.jsonl.*line 2"):
        read_diagnostics(tmp_path)
    (tmp_path / "diagnostics.jsonl").write_text('{"epoch": 0}\n{"sigma": [1.0]}\n[1]\n')
    with pytest.raises(CheckpointError, match=r"diagnostics\.jsonl.*line 2.*epoch"):
        read_diagnostics(tmp_path)


# ------------------------------------------------------------------ 10 and 9: resume of finished / never-created runs
@pytest.mark.parametrize("full_command", [True, False])
def test_resume_of_a_finished_run_without_checkpoint_changes_nothing(tmp_path, capsys, finished, full_command):
    run = _copy(finished, tmp_path / "run")
    (run / "checkpoint.pt").unlink()
    before = _snapshot(run)
    argv = [*TRAIN, "--out", str(run), "--resume"] if full_command else ["train", "--out", str(run), "--resume"]
    assert main(argv) == 0
    assert "finished run" in capsys.readouterr().err
    assert _snapshot(run) == before  # not retrained, results.json not rewritten, no checkpoint made


def test_resume_into_a_folder_that_was_never_created_starts_the_run(tmp_path, capsys):
    run = tmp_path / "never" / "run"
    assert main([*TRAIN, "--out", str(run), "--resume"]) == 0
    assert (run / "results.json").is_file() and (run / "checkpoint.pt").is_file()
    assert "did not exist" in capsys.readouterr().err
    # without the original command line there is nothing to start from: one line
    assert main(["train", "--out", str(tmp_path / "nope"), "--resume"]) == 2
    _one_error_line(capsys, "does not exist")


# ------------------------------------------------------------------ 13: --tensorboard checked before the folder
@pytest.mark.parametrize("where, match", [("/dev/null", "is a file"), ("{T}/afile", "is a file"),
                                          ("{T}/afile/tb", "afile is a file")])
def test_bad_tensorboard_dir_is_one_line_before_the_run_folder_exists(tmp_path, capsys, where, match):
    pytest.importorskip("tensorboard")
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out), "--tensorboard", where.format(T=tmp_path)]) == 2
    _one_error_line(capsys, match)
    assert not out.exists()
    assert (tmp_path / "afile").read_text() == "x"


# ------------------------------------------------------------------ 16: smaller ones
def test_folder_named_checkpoint_fails_before_any_training(tmp_path, capsys, finished):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(finished / "config.json", run / "config.json")
    (run / "checkpoint.pt").mkdir()
    before = _snapshot(run)
    assert main(["train", "--out", str(run), "--resume"]) == 2
    _one_error_line(capsys, "checkpoint.pt is not a file")
    assert _snapshot(run) == before and sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "config.json"]
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(run / "checkpoint.pt")


def test_disk_full_while_taking_the_run_lock_leaves_nothing(tmp_path, monkeypatch):
    import coreaug.runlock as runlock_mod

    real_write = os.write

    def full(fd, data):
        if fd > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(runlock_mod.os, "write", full)
    with pytest.raises(OutputError, match="no space left on device"):
        runlock_mod.acquire_run_lock(tmp_path / "new" / "run")
    assert not (tmp_path / "new").exists()  # neither the lock file nor the folders it created
    (tmp_path / "old").mkdir()
    with pytest.raises(OutputError):
        runlock_mod.acquire_run_lock(tmp_path / "old")
    assert list((tmp_path / "old").iterdir()) == []
    monkeypatch.setattr(runlock_mod.os, "write", real_write)
    with runlock_mod.acquire_run_lock(tmp_path / "old"):  # and the lock can be taken again
        pass


def test_exclusive_create_refuses_a_file_that_appeared_meanwhile(tmp_path, monkeypatch):
    import coreaug.io as io_mod

    out = tmp_path / "s.json"

    def other_writer_finishes_first(name):  # another `coreaug select --out s.json` wins the race
        if name == "write:s.json" and not out.exists():
            out.write_text("theirs")

    monkeypatch.setattr(io_mod, "pause_point", other_writer_finishes_first)
    with pytest.raises(OutputError, match="already exists"):
        with io_mod.exclusive_create(out):
            io_mod.write_json_atomic(out, {"mine": 1})
    assert out.read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temp file left
    io_mod.write_json_atomic(out, {"mine": 1})  # outside the block: replaced as usual (--force)
    with io_mod.exclusive_create(tmp_path / "t.json"):
        io_mod.write_text_atomic(tmp_path / "t.json", "new")
    assert (tmp_path / "t.json").read_text() == "new"
