"""One source of configuration: TrainConfig's field metadata generates the flags of `coreaug train`
and `coreaug sweep`, with choices read from the registries."""

from __future__ import annotations

import dataclasses

from coreaug.cli import build_parser
from coreaug.commands._args import config_flag_fields
from coreaug.proxies import PROXY_KINDS
from coreaug.select.budgets import PER_CLASS_MODES
from coreaug.select.registry import SELECTOR_NAMES
from coreaug.train.config import TrainConfig, config_fields


def _subparser(name):
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices[name]


def test_every_flagged_field_is_a_train_flag_that_sets_it():
    sub = _subparser("train")
    flagged = [f for f in config_fields() if "flag" in f.metadata]
    assert len(flagged) == len(config_flag_fields()) >= 35
    dests = {a.dest: a for a in sub._actions}
    for f in flagged:
        assert f.name in dests, f.name
        assert dests[f.name].option_strings == ["--" + f.name.replace("_", "-")]
        assert dests[f.name].default is None  # not given → the preset's / config file's value stays
    args = sub.parse_args(["--prune-ratio", "0.3", "--milestones", "3,5", "--num-workers", "auto", "--amp"])
    assert (args.prune_ratio, args.milestones, args.num_workers, args.amp) == (0.3, [3, 5], "auto", True)


def test_choices_come_from_the_registries():
    sub = _subparser("train")
    dests = {a.dest: a for a in sub._actions}
    assert tuple(dests["per_class"].choices) == tuple(PER_CLASS_MODES)
    assert tuple(dests["proxy"].choices) == tuple(PROXY_KINDS)
    assert all(name in dests["selector"].help for name in SELECTOR_NAMES)


def test_sweep_flags_are_the_fields_marked_for_sweeps():
    sub = _subparser("sweep")
    dests = {a.dest for a in sub._actions}
    marked = {f.name for f in config_fields() if f.metadata.get("flag", {}).get("sweep")}
    assert marked == set(config_flag_fields(sweep=True)) and marked <= dests
    assert "fraction" not in marked and "fraction" not in dests  # a grid axis (--fractions), not a fixed override


def test_validate_checks_and_never_changes_its_argument():
    from coreaug.train.config import validate

    cfg = TrainConfig(selector="k-center", epochs=3.0, milestones=[2.0], dataset="DIGITS")
    before = dataclasses.asdict(cfg)
    out = validate(cfg)
    assert dataclasses.asdict(cfg) == before  # the argument is untouched
    assert (out.selector, out.epochs, out.milestones, out.dataset) == ("kcenter", 3, [2], "digits")
    assert type(out.epochs) is int and out.hash() == validate(out).hash()


def test_validation_runs_once_unless_the_config_changed(monkeypatch):
    from coreaug.train import config

    calls = []
    real = config._check_groups
    monkeypatch.setattr(config, "_check_groups", lambda cfg: (calls.append(1), real(cfg))[1])
    cfg = config.validate(TrainConfig())
    assert config.validate(cfg) is cfg and len(calls) == 1  # resolve_config, then train(): checked once
    cfg.lr = -1.0  # changed after validation: checked again, and refused
    import pytest

    from coreaug.errors import ConfigError

    with pytest.raises(ConfigError, match="learning rate must be > 0"):
        config.validate(cfg)
    assert len(calls) == 2


def test_every_option_of_every_command_before_the_rework_is_still_there():
    """`coreaug <command> --help` keeps its options: the option strings of b2786e2 (stored) are all accepted."""
    import json
    from pathlib import Path

    before = json.loads((Path(__file__).parent / "fixtures" / "cli_options_b2786e2.json").read_text())
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, options in before.items():
        now = {s for a in commands[name]._actions for s in a.option_strings}
        assert set(options) <= now, (name, sorted(set(options) - now))


def test_every_flag_says_its_default_read_from_the_field():
    from coreaug.train.presets import PRESETS

    dests = {a.dest: a for a in _subparser("train")._actions}
    for f in config_fields():
        if "flag" not in f.metadata:
            continue
        help_text = dests[f.name].help
        assert "default" in help_text, f.name
    assert dests["prune_keep"].help.endswith(f"(default: {TrainConfig().prune_keep})")
    assert any("lr" in p for p in PRESETS.values()) and dests["lr"].help == f"default: the preset's, else {TrainConfig().lr}"
