"""``coreaug report RUN_DIRS... --out DIR``: summary table (CSV + Markdown) and accuracy-vs-time plot.

A RUN_DIR may also be a folder of run folders (expanded one level). Unfinished runs (a run folder
without ``results.json``: still running, or stopped) are left out, and the report says how many
and which. A run reached more than once (``report A A``, ``report SWEEP SWEEP/cell``, a symlink) counts
once, with a note. ``--out`` may not be (or lie inside) a run folder: a report never touches a run's
files. Example::

    coreaug report runs/digits --out runs/digits/report
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coreaug.errors import ConfigError
from coreaug.runfolder import RunFolder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (or folders of run folders)")
    parser.add_argument("--out", default="report", help="where to write summary.csv/.md, runs.csv, accuracy_vs_time.png")
    parser.add_argument("--quiet", action="store_true", help="do not print the table")


def unfinished_runs(paths: list[str]) -> list[Path]:
    """Run folders among ``paths`` (and their direct sub-folders) that have no ``results.json`` (each once)."""
    from coreaug.report import unique_folders

    found: list[Path] = []
    for p in map(Path, paths):
        candidates = [p] if RunFolder(p).started() else (sorted(c for c in p.iterdir() if c.is_dir()) if p.is_dir() else [])
        found += [c for c in candidates if not RunFolder(c).results_path.is_file() and RunFolder(c).started()]
    return unique_folders(found)[0]


def _describe(skipped: list[Path], k: int = 5) -> str:
    names = ", ".join(str(p) for p in skipped[:k]) + (f", … +{len(skipped) - k} more" if len(skipped) > k else "")
    return f"{len(skipped)} unfinished run(s) without results.json skipped: {names}"


def run(args: argparse.Namespace) -> int:
    from coreaug.io import check_output_dir
    from coreaug.report import check_report_folder, find_runs_once, repeats_note, write_report

    check_output_dir(args.out)
    skipped = unfinished_runs(args.runs)
    try:
        found, repeats = find_runs_once(args.runs)
    except ConfigError as exc:
        raise ConfigError(f"{exc} ({_describe(skipped)})" if skipped else str(exc)) from None
    check_report_folder(args.out, [*found, *skipped])
    paths = write_report(found, args.out)
    if not args.quiet:
        print(paths["md"].read_text(encoding="utf-8"), end="")
        print(f"wrote {', '.join(str(p) for p in paths.values())}")
    if repeats:
        print(f"coreaug: note: {repeats_note(repeats)}", file=sys.stderr)
    if skipped:
        print(f"coreaug: note: {_describe(skipped)}", file=sys.stderr)
    return 0
