"""``coreaug info``: what can be named on the command line."""

from __future__ import annotations

import argparse

import torch

from coreaug.augment import STRONG_AUGMENTATIONS, WEAK_AUGMENTATIONS
from coreaug.data import DATASETS
from coreaug.device import resolve_device
from coreaug.models import MODELS, PREFIX_HELP


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
    try:
        from coreaug.train.presets import PRESETS
    except ImportError:
        PRESETS = {}
    if PRESETS:
        print(f"presets:               {', '.join(PRESETS)}")
    from coreaug.select import describe_selectors

    print("selectors (--selector / select --method; needs = what the proxy pass computes for it):")
    for line in describe_selectors():
        print(f"  {line}")
    return 0
