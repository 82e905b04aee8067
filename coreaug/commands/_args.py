"""Range checks shared by the sub-commands.

argparse only converts types (``--fraction abc`` is a usage error: a usage line plus an error line);
values of the right type but out of range are user errors of the command, reported as one line
``coreaug: error: --batch-size must be a positive integer, got 0`` (:class:`ConfigError`) before any
work is done.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any, Iterable

from coreaug.errors import ConfigError

#: Seeds are non-negative 63-bit integers everywhere (torch, numpy and the config hash accept them).
SEED_LIMIT = 2**63


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def check_ranges(
    args: argparse.Namespace,
    *,
    positive: Iterable[str] = (),
    non_negative: Iterable[str] = (),
    seeds: Iterable[str] = ("seed",),
) -> None:
    """Raise :class:`ConfigError` for the first integer option (by ``dest``) outside its range; ``None`` is skipped."""
    for dest in positive:
        value = getattr(args, dest, None)
        if value is not None and value < 1:
            raise ConfigError(f"{_flag(dest)} must be a positive integer, got {value}")
    for dest in non_negative:
        value = getattr(args, dest, None)
        if value is not None and value < 0:
            raise ConfigError(f"{_flag(dest)} must be an integer >= 0, got {value}")
    for dest in seeds:
        value = getattr(args, dest, None)
        if value is not None and not 0 <= value < SEED_LIMIT:
            raise ConfigError(f"{_flag(dest)} must be in [0, 2^63), got {value}")


def int_list(text: str) -> list[int]:
    """Argparse ``type`` of a comma-separated list of ints, e.g. ``--milestones 100,150``."""
    return [int(v) for v in text.split(",") if v.strip()]


def int_or_auto(text: str) -> int | str:
    """Argparse ``type`` of flags taking a non-negative integer or ``auto``."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}") from None


_KINDS = {"float": float, "int": int, "int_list": int_list, "int_or_auto": int_or_auto}


def config_flag_fields(*, sweep: bool = False) -> tuple[str, ...]:
    """The config fields that have a flag (``sweep=True``: those fixed for every run of a sweep)."""
    from coreaug.train.config import config_fields

    return tuple(f.name for f in config_fields() if "flag" in f.metadata and (not sweep or f.metadata["flag"]["sweep"]))


def add_config_flags(parser: argparse.ArgumentParser, fields: Iterable[str],
                     groups: dict[str, Any] | None = None) -> dict[str, Any]:
    """Add one ``--flag`` per config field in ``fields``, generated from the field's metadata
    (:func:`coreaug.train.config._flag`): help, type, metavar, choices from the registries, in the ``--help``
    section of the field's config group (:data:`~coreaug.train.config.GROUP_TITLES`, made in that order unless
    ``groups`` maps the group's name to an argparse group). Every flag defaults to ``None`` (= not given).
    Returns the argparse groups by config-group name."""
    from coreaug.train.config import FIELD_GROUP, GROUP_TITLES, config_fields, flag_choices

    groups = dict(groups or {})
    wanted = set(fields)
    chosen = [f for f in config_fields() if f.name in wanted]
    for key in GROUP_TITLES:
        if key not in groups and any(FIELD_GROUP[f.name] == key for f in chosen):
            groups[key] = parser.add_argument_group(GROUP_TITLES[key])
    for f in chosen:
        meta = f.metadata["flag"]
        kw: dict[str, Any] = {"dest": f.name}
        help_text = meta["help"]
        for key in re.findall(r"\{(\w+)\}", help_text):  # a list of names read from a registry
            help_text = help_text.replace("{" + key + "}", " | ".join(flag_choices(key)))
        kw["help"] = _with_default(help_text, f)
        if meta["kind"] == "switch":
            kw.update(action="store_true", default=None)
        else:
            if meta["kind"] is not None:
                kw["type"] = _KINDS[meta["kind"]]
            if meta["metavar"] is not None:
                kw["metavar"] = meta["metavar"]
            if meta["choices"] is not None:
                kw["choices"] = flag_choices(meta["choices"])
        groups[FIELD_GROUP[f.name]].add_argument(_flag(f.name), **kw)
    return groups


def _with_default(help_text: str, f: Any) -> str:
    """``help_text`` plus the field's default, from the dataclass (never written by hand, so it cannot drift):
    ``default: X``, or ``default: the preset's, else X`` where a preset sets the field. Help that explains its
    default itself (it says "default") is left as it is."""
    from coreaug.train.presets import PRESETS

    if "default" in help_text:
        return help_text
    value = f.default_factory() if f.default is dataclasses.MISSING else f.default
    shown = "off" if f.metadata["flag"]["kind"] == "switch" and value is False else value
    shown = ",".join(map(str, shown)) if isinstance(shown, list) else shown
    shown = "none" if shown in (None, "") else shown
    by_preset = any(f.name in preset for preset in PRESETS.values())
    note = f"default: the preset's, else {shown}" if by_preset else f"default: {shown}"
    return f"{help_text} ({note})" if help_text else note
