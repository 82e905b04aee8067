"""RunFolder: the one owner of a run folder's layout and start rules, and the one definition of
"same configuration" (coreaug.runfolder)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

import coreaug
from coreaug.errors import CheckpointError, ConfigError
from coreaug.runfolder import RUN_FILES, RunFolder, config_differences, is_run_folder
from coreaug.train import TrainConfig




def test_start_modes(tmp_path):
    cfg = TrainConfig(epochs=2)
    empty = RunFolder(tmp_path / "new")
    assert empty.start_mode(False, cfg, created=True) == "fresh"
    assert empty.start_mode(True, cfg, created=True) == "fresh"  # rerun of a command killed before mkdir
    d = tmp_path / "r"
    d.mkdir()
    f = RunFolder(d)
    (d / ".coreaug.lock").write_text("")  # bookkeeping, not a run file
    assert f.start_mode(False, cfg, created=False) == "fresh"
    f.write_config(cfg)
    with pytest.raises(ConfigError, match="not empty; pass --resume"):
        f.start_mode(False, cfg, created=False)
    assert f.start_mode(True, cfg, created=False) == "restart"
    with pytest.raises(CheckpointError, match=r"another configuration \(epochs 2 != 3\)"):
        f.start_mode(True, TrainConfig(epochs=3), created=False)
    (d / "checkpoint.pt").mkdir()
    with pytest.raises(CheckpointError, match="checkpoint.pt is not a file"):
        f.start_mode(True, cfg, created=False)
    (d / "checkpoint.pt").rmdir()
    (d / "checkpoint.pt").write_bytes(b"x")
    assert f.start_mode(True, cfg, created=False) == "checkpoint"
    f.write_results({"completed": True, "config_hash": cfg.hash()})
    assert f.start_mode(True, cfg, created=False) == "finished"
    assert f.finished_results()["completed"] is True


def test_same_configuration_is_defined_once(tmp_path):
    cfg = TrainConfig()
    saved = cfg.to_dict()
    del saved["pruning"]  # a config.json written before the field existed: its default
    assert config_differences(saved, cfg) == []
    saved["device"] = "cuda"  # outside the hash: may change on resume
    assert config_differences(saved, cfg) == []
    saved["lr"] = 0.5
    saved["old_field"] = 1
    assert config_differences(saved, cfg) == [f"lr 0.5 != {cfg.lr!r}", "unknown key 'old_field'"]
    assert config_differences(None, cfg) == ["no readable config.json"]


def test_is_run_folder(tmp_path):
    d = tmp_path / "x"
    d.mkdir()
    assert not is_run_folder(d)
    (d / "config.json").write_text("{}")
    assert not is_run_folder(d)  # a config file alone could be anything
    (d / "metrics.csv").write_text("epoch\n")
    assert is_run_folder(d)


def test_no_other_module_spells_a_run_file_name():
    """The layout lives in coreaug/runfolder.py: any other module names the files through it."""
    root = Path(coreaug.__file__).parent
    pattern = re.compile("|".join(re.escape(f'"{name}"') for name in RUN_FILES))
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "runfolder.py":
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            # a report folder's own diagnostics.csv (coreaug report) is not a run file
            if pattern.search(code) and "paths[" not in code:
                offenders.append(f"{path.relative_to(root)}:{i}: {line.strip()}")
    assert not offenders, offenders


def test_metrics_are_written_as_csv_and_strict_jsonl(tmp_path):
    f = RunFolder(tmp_path / "m")
    f.path.mkdir()
    f.write_metrics([{"epoch": 1, "loss": float("nan"), "extra": 3}], ("epoch", "loss"))
    assert (f.path / "metrics.csv").read_text().splitlines()[0] == "epoch,loss"
    assert json.loads((f.path / "metrics.jsonl").read_text()) == {"epoch": 1, "loss": None, "extra": 3}


def _folder_with(d, cfg, kind):
    """A run folder in state ``kind`` for ``cfg`` (synthetic files: nothing here trains)."""
    d.mkdir(parents=True)
    other = dataclasses.replace(cfg, epochs=cfg.epochs + 1)
    if kind in ("finished", "finished-other", "damaged", "checkpoint", "restart"):
        (d / "config.json").write_text(json.dumps(cfg.to_dict()))
    if kind in ("finished", "finished-other"):
        done = other if kind == "finished-other" else cfg
        (d / "results.json").write_text(json.dumps({"completed": True, "config_hash": done.hash(),
                                                    "epochs_done": done.epochs}))
    if kind == "damaged":
        (d / "checkpoint.pt").mkdir()
    if kind == "checkpoint":
        (d / "checkpoint.pt").write_bytes(b"x")
    if kind == "other-config":
        (d / "config.json").write_text(json.dumps(other.to_dict()))
        (d / "checkpoint.pt").write_bytes(b"x")  # another configuration's checkpoint: not resumed either
    if kind == "unreadable-config":
        (d / "config.json").write_text("{not json")
    if kind == "foreign":
        (d / "metrics.jsonl").write_text("")


# what `coreaug train --resume` (start_mode) and the sweep's plan (plan_run) make of each state
_SAME_RULES = {
    "empty": ("fresh", "run"), "finished": ("finished", "skip"), "finished-other": (CheckpointError, "conflict"),
    "damaged": (CheckpointError, "conflict"), "other-config": (CheckpointError, "conflict"),
    "checkpoint": ("checkpoint", "resume"), "restart": ("restart", "run"),
    "unreadable-config": (CheckpointError, "conflict"), "foreign": (CheckpointError, "conflict"),
}


@pytest.mark.parametrize("kind", sorted(_SAME_RULES))
def test_train_resume_and_the_sweep_read_a_folder_by_the_same_rules(tmp_path, kind):
    from coreaug.runfolder import FOLDER_STATES
    from coreaug.sweep import build_grid, plan_sweep

    assert set(_SAME_RULES) | {"not-a-folder"} == set(FOLDER_STATES)
    spec = build_grid(preset="digits-quick", methods="subset-only", selectors="random", fractions="0.1", seeds="0",
                      overrides={"model": "mlp", "epochs": 2})
    (p,) = plan_sweep(spec, tmp_path)
    d = tmp_path / p.point.name
    if kind != "empty":
        _folder_with(d, p.cfg, kind)
    folder = RunFolder(d)
    assert folder.state(p.cfg).kind == kind
    start, action = _SAME_RULES[kind]
    (planned,) = plan_sweep(spec, tmp_path)
    assert planned.action == action, planned.detail
    if isinstance(start, str):
        assert folder.start_mode(True, p.cfg, created=False) == start
    else:
        with pytest.raises(start) as err:
            folder.start_mode(True, p.cfg, created=False)
        assert "\n" not in str(err.value)


def test_a_finished_run_whose_config_json_is_gone_is_finished_by_its_results_hash(tmp_path):
    import json

    cfg = TrainConfig(epochs=2)
    f = RunFolder(tmp_path / "r")
    f.path.mkdir()
    (f.path / "results.json").write_text(json.dumps({"completed": True, "config_hash": cfg.hash(), "epochs_done": 2}))
    assert f.state(cfg).kind == "finished" and f.start_mode(True, cfg, created=False) == "finished"
    assert f.state(TrainConfig(epochs=3)).kind == "finished-other"


def test_a_hand_written_config_json_counts_as_the_config_it_resolves_to(tmp_path):
    import json

    cfg = TrainConfig(selector="kcenter", epochs=2)
    f = RunFolder(tmp_path / "r")
    f.path.mkdir()
    (f.path / "config.json").write_text(json.dumps({**cfg.to_dict(), "dataset": "DIGITS", "selector": "k-center"}))
    assert config_differences(json.loads((f.path / "config.json").read_text()), cfg) == []
    assert f.start_mode(True, cfg, created=False) == "restart"
