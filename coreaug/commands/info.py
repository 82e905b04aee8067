"""``coreaug info``: what can be named on the command line."""

from __future__ import annotations

import argparse

import torch

from coreaug.augment import STRONG_AUGMENTATIONS, WEAK_AUGMENTATIONS
from coreaug.data import DATASETS
from coreaug.device import resolve_device
from coreaug.models import MODELS, PREFIX_HELP
from coreaug.select import describe_selectors
from coreaug.train.config import GROUPS
from coreaug.train.presets import PRESETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="device to report on: auto|cpu|cuda (default: auto)")


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    print(f"torch {torch.__version__}; device {device}")
    print(f"datasets:              {', '.join(DATASETS)}")
    print(f"models:                {', '.join(MODELS)}")
    print(f"                       or {PREFIX_HELP}")
    print(f"weak augmentations:    {', '.join(WEAK_AUGMENTATIONS)}")
    print(f"strong augmentations:  {', '.join(STRONG_AUGMENTATIONS)}")
    print(f"presets:               {', '.join(PRESETS)}")
    print("selectors (--selector / select --method; needs = what the proxy pass computes for it):")
    for line in describe_selectors():
        print(f"  {line}")
    print("config keys by group, with their defaults (YAML/JSON keys, flat or in the group's section; flags are "
          "--key-with-dashes):")
    for line in config_key_lines():
        print(f"  {line}")
    return 0


def config_key_lines() -> list[str]:
    """One line per config group: ``group: key=default, …`` (from :data:`coreaug.train.config.GROUPS`)."""
    import dataclasses
    import json

    width = max(map(len, GROUPS)) + 1
    lines = []
    for name, cls in GROUPS.items():
        keys = ", ".join(f"{k}={json.dumps(v)}" for k, v in dataclasses.asdict(cls()).items())
        lines.append(f"{name + ':':<{width}} {keys}")
    return lines
