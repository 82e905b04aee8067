"""The ``coreaug`` command line: one entry point, one sub-command per job.

Each sub-command lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``; this file only wires them together and turns project errors into a
one-line message with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from coreaug.errors import CoreaugError
from spectra.errors import SpectraError

# name -> (module implementing add_arguments/run, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "info": ("coreaug.commands.info", "list datasets, models, augmentations and presets"),
    "spectra": ("coreaug.commands.spectra", "Jacobian spectrum of a model on a data subset, clean vs perturbed/augmented (JSON+NPZ)"),
    "select": ("coreaug.commands.select", "select a weighted coreset / random / max-loss subset and write it to a file"),
    "train": ("coreaug.commands.train", "train one experiment (preset + config file + flags) into a run folder"),
    "report": ("coreaug.commands.report", "tables and plots (accuracy, time, speed-up vs full-aug) from run folders"),
    "sweep": ("coreaug.commands.sweep", "run a grid (methods x selectors x fractions x seeds) into OUT/<run>/, skip done, resume, report"),
    "figures": ("coreaug.commands.figures", "regenerate every figure (PNG + PDF + CSV/JSON) on the embedded digits data"),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="coreaug",
        description="Data-efficient augmentation: train on augmented coresets, inspect Jacobian spectra.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sp = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``coreaug`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except (CoreaugError, SpectraError) as exc:
        print(f"coreaug: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("coreaug: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
