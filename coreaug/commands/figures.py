"""``coreaug figures``: regenerate every figure (PNG + PDF + CSV/JSON) on the embedded digits data."""

from __future__ import annotations

import argparse

from coreaug.commands._args import check_ranges
from coreaug.figures import FIGURES, make_figures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="figures", help="output folder (default: figures)")
    parser.add_argument("--only", nargs="+", choices=FIGURES, metavar="FIG",
                        help=f"only these figures ({', '.join(FIGURES)})")
    parser.add_argument("--runs", nargs="+", metavar="DIR",
                        help="run folders from `coreaug train` for fig5 and fig6 (fig6: those trained with "
                             "--diagnostics-every; default: quick built-in digits runs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the theory setting (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from coreaug.io import check_output_dir
    from coreaug.report import find_runs

    check_ranges(args)
    check_output_dir(args.out)
    if args.runs:
        find_runs(args.runs)  # bad --runs fail here, before the output folder is created
    make_figures(args.out, only=args.only, runs=args.runs, seed=args.seed, quiet=args.quiet)
    return 0
