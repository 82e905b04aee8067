"""``coreaug report RUN_DIRS... --out DIR``: summary table (CSV + Markdown) and accuracy-vs-time plot.

A RUN_DIR may also be a folder of run folders (expanded one level). Example::

    coreaug report runs/digits --out runs/digits/report
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (or folders of run folders)")
    parser.add_argument("--out", default="report", help="where to write summary.csv/.md, runs.csv, accuracy_vs_time.png")
    parser.add_argument("--quiet", action="store_true", help="do not print the table")


def run(args: argparse.Namespace) -> int:
    from coreaug.report import write_report

    paths = write_report(args.runs, args.out)
    if not args.quiet:
        print(paths["md"].read_text(encoding="utf-8"), end="")
        print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
