"""Range checks shared by the sub-commands.

argparse only converts types (``--fraction abc`` is a usage error: a usage line plus an error line);
values of the right type but out of range are user errors of the command, reported as one line
``coreaug: error: --batch-size must be a positive integer, got 0`` (:class:`ConfigError`) before any
work is done.
"""

from __future__ import annotations

import argparse
from typing import Iterable

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
