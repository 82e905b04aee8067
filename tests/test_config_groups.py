"""One source of configuration in groups: TrainConfig holds data / network / selection / dynamic_pruning /
augmentation / optimisation / execution / diagnostics; every field keeps one flat name (its YAML key, flag and
config.json key); YAML may give groups as sections; run folders written before the groups still resume."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from coreaug.cli import build_parser, main
from coreaug.errors import ConfigError
from coreaug.train.config import (FIELD_GROUP, FIELD_NAMES, GROUP_TITLES, GROUPS, OptimisationConfig,
                                  SelectionConfig, TrainConfig, config_fields, config_from_dict, resolve_config)

FIXTURES = Path(__file__).parent / "fixtures" / "run_folders_v1"  # written by the flat TrainConfig (41707af)
# the flags the fixtures were made with (stopped: killed at the 2nd epoch end; finished: --epochs 2)
V1_FLAGS = ["--preset", "digits-quick", "--model", "mlp", "--fraction", "0.1", "--threads", "1", "--device", "cpu",
            "--quiet"]


def test_every_field_sits_in_exactly_one_group_under_one_flat_name():
    names = [f.name for cls in GROUPS.values() for f in dataclasses.fields(cls)]
    assert len(names) == len(set(names)) == len(FIELD_NAMES) >= 45
    assert not set(GROUPS) & FIELD_NAMES  # a group's name is never a field's (cfg.<name> is unambiguous)
    assert [f.name for f in dataclasses.fields(TrainConfig)] == list(GROUPS) == list(GROUP_TITLES)
    assert list(TrainConfig().to_dict()) == [f.name for f in config_fields()]


def test_flat_names_read_and_write_the_groups():
    cfg = TrainConfig(lr=0.05, fraction=0.2)
    assert cfg.lr == cfg.optimisation.lr == 0.05 and cfg.selection.fraction == 0.2
    cfg.epochs = 7
    assert cfg.optimisation.epochs == 7
    grouped = TrainConfig(optimisation=OptimisationConfig(lr=0.05, epochs=7), selection=SelectionConfig(fraction=0.2))
    assert grouped == cfg and grouped.hash() == cfg.hash()
    assert TrainConfig(selection=SelectionConfig(fraction=0.2), fraction=0.4).fraction == 0.4  # flat names win


def test_groups_are_copied_so_replace_never_changes_the_original():
    given = OptimisationConfig(milestones=[3])
    cfg = TrainConfig(optimisation=given)
    cfg.milestones.append(5)
    assert given.milestones == [3]
    other = dataclasses.replace(cfg, lr=0.5)
    assert (other.lr, cfg.lr) == (0.5, 0.1) and other.optimisation is not cfg.optimisation
    other.milestones.append(9)
    assert cfg.milestones == [3, 5]


@pytest.mark.parametrize("kw, match", [({"bogus": 1}, "unknown field"), ({"data": {"dataset": "x"}}, "DataConfig")])
def test_unknown_fields_and_wrong_groups_are_type_errors(kw, match):
    with pytest.raises(TypeError, match=match):
        TrainConfig(**kw)


def test_help_shows_each_field_in_its_groups_section():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["train"]
    titles = {g.title: g for g in sub._action_groups}
    for f in config_fields():
        if "flag" not in f.metadata:
            continue
        group = titles[GROUP_TITLES[FIELD_GROUP[f.name]]]
        assert f.name in {a.dest for a in group._group_actions}, f.name


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_yaml_file_may_give_groups_as_sections(tmp_path):
    flat = _write(tmp_path / "flat.yaml", "model: mlp\nlr: 5e-2\nepochs: 3\nfraction: 0.1\n")
    sectioned = _write(tmp_path / "sections.yaml", "network: {model: mlp}\noptimisation:\n  lr: 5e-2\n  epochs: 3\n"
                                                   "fraction: 0.1\n")
    a, b = resolve_config(config_file=flat), resolve_config(config_file=sectioned)
    assert a == b and a.lr == 0.05 and a.hash() == b.hash()
    # the sectioned form of a config reads back as the same config
    import yaml

    again = _write(tmp_path / "again.yaml", yaml.safe_dump(a.to_sections()))
    assert resolve_config(config_file=again) == a


@pytest.mark.parametrize("text, match", [
    ("optimisation: {fraction: 0.1}\n", r"'fraction' belongs to section 'selection', not to 'optimisation'"),
    ("optimisation: {learning_rate: 0.1}\n", r"unknown key\(s\) 'learning_rate' in section 'optimisation'.*its keys: optimizer"),
    ("optimisation: 3\n", "section 'optimisation' .* must be a mapping"),
    ("lr: 0.1\noptimisation: {lr: 0.2}\n", "'lr' is given twice"),
    ("learning_rate: 0.1\n", r"unknown config key\(s\) 'learning_rate'"),
    ("model: {model: mlp}\n", r"'model' .* takes a value, not a mapping \(the model's own section is 'network'\)"),
])
def test_bad_sections_are_one_line_config_errors(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match) as err:
        resolve_config(config_file=_write(tmp_path / "c.yaml", text))
    assert "\n" not in str(err.value)


def test_grid_overrides_and_cells_take_sections_too():
    from coreaug.sweep import GridSpec

    spec = GridSpec(methods=["full-aug"], seeds=[0], overrides={"optimisation": {"epochs": 2}},
                    cells=[{"dynamic_pruning": {"pruning": "infobatch", "prune_ratio": 0.3}}]).normalized()
    assert spec.overrides == {"epochs": 2} and spec.cells == [{"pruning": "infobatch", "prune_ratio": 0.3}]
    with pytest.raises(ConfigError, match=r"'lr' belongs to section 'optimisation', not to 'dynamic_pruning' \(in grid cell 1\)"):
        GridSpec(methods=["full"], cells=[{"dynamic_pruning": {"lr": 1}}]).normalized()


# --------------------------------------------------------------- run folders written before the groups existed
def test_a_flat_config_json_from_before_the_groups_reads_with_the_same_hash():
    for name in ("stopped", "finished"):
        saved = json.loads((FIXTURES / name / "config.json").read_text())
        cfg = config_from_dict(saved)
        assert cfg.to_dict() == saved  # every key of the old file, same values: nothing renamed or lost
        ck = torch.load(FIXTURES / name / "checkpoint.pt", map_location="cpu", weights_only=False)
        assert ck["config_hash"] == cfg.hash()


def test_a_run_stopped_before_the_change_resumes_to_the_uninterrupted_weights(tmp_path):
    stopped = shutil.copytree(FIXTURES / "stopped", tmp_path / "stopped")
    assert main(["train", "--resume", "--quiet", "--out", str(stopped)]) == 0
    assert main(["train", *V1_FLAGS, "--epochs", "3", "--out", str(tmp_path / "fresh")]) == 0
    resumed = torch.load(stopped / "checkpoint.pt", map_location="cpu", weights_only=False)
    fresh = torch.load(tmp_path / "fresh" / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert resumed["epoch"] == fresh["epoch"] == 3
    for key, value in fresh["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    r = json.loads((stopped / "results.json").read_text())
    assert r["completed"] and r["final_test_acc"] == json.loads((tmp_path / "fresh" / "results.json").read_text())[
        "final_test_acc"]


def test_a_finished_run_from_before_the_change_is_left_alone_and_reported(tmp_path, capsys):
    finished = shutil.copytree(FIXTURES / "finished", tmp_path / "finished")
    before = {p.name: p.read_bytes() for p in finished.iterdir()}
    assert main(["train", "--resume", "--quiet", "--out", str(finished)]) == 0
    assert {p.name: p.read_bytes() for p in finished.iterdir() if p.name in before} == before
    assert main(["report", str(finished), "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "runs.csv").is_file()


def test_info_lists_every_config_key_under_its_group_with_its_default(capsys):
    assert main(["info", "--device", "cpu"]) == 0
    lines = {line.split(":")[0].strip(): line for line in capsys.readouterr().out.splitlines() if ":" in line}
    for f in config_fields():
        default = getattr(TrainConfig(), f.name)
        assert f"{f.name}={json.dumps(default)}" in lines[FIELD_GROUP[f.name]], f.name


def test_a_config_survives_pickle_and_deepcopy_with_its_groups():
    import copy
    import pickle

    from coreaug.train.config import validate

    cfg = validate(TrainConfig(lr=0.2, milestones=[3], data_options={"a": 1}))
    for other in (pickle.loads(pickle.dumps(cfg)), copy.deepcopy(cfg)):
        assert other == cfg and other.hash() == cfg.hash() and other.lr == 0.2
        other.milestones.append(5)
        assert cfg.milestones == [3]


def test_a_flag_overrides_the_same_key_given_in_a_grid_files_section(tmp_path):
    from coreaug.sweep import build_grid

    grid = _write(tmp_path / "g.yaml", "methods: [full]\nseeds: [0]\noverrides:\n  optimisation: {lr: 0.05, epochs: 2}\n"
                                       "  execution: {threads: 2}\n")
    spec = build_grid(grid_file=grid, overrides={"lr": 0.2})
    assert spec.overrides["lr"] == 0.2 and spec.overrides["epochs"] == 2
    spec = build_grid(grid="digits-selectors", grid_file=grid)  # the preset sets threads: 1, the file's section wins
    assert spec.overrides["threads"] == 2


def test_a_shallow_copy_has_its_own_groups_and_an_empty_section_is_allowed(tmp_path):
    import copy

    cfg = TrainConfig(lr=0.2)
    other = copy.copy(cfg)
    other.lr = 0.3
    assert cfg.lr == 0.2 and other.optimisation is not cfg.optimisation
    empty = _write(tmp_path / "e.yaml", "optimisation:\nfraction: 0.1\n")
    assert resolve_config(config_file=empty).fraction == 0.1


def test_print_config_writes_a_yaml_file_that_reads_back_to_the_same_config(tmp_path, capsys):
    argv = ["--preset", "digits-quick", "--model", "mlp", "--lr", "0.02", "--milestones", "3,5", "--amp"]
    assert main(["train", *argv, "--print-config", "--out", str(tmp_path / "never")]) == 0
    text = capsys.readouterr().out
    assert not (tmp_path / "never").exists() and text.startswith("data:\n")
    again = resolve_config(config_file=_write(tmp_path / "c.yaml", text))
    expected = resolve_config("digits-quick", overrides={"model": "mlp", "lr": 0.02, "milestones": [3, 5], "amp": True})
    assert again == expected and again.hash() == expected.hash()
