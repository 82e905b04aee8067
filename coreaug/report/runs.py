"""Run folders for reports: load one, find them under paths (each counted once), and keep reports out of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from coreaug.errors import ConfigError, OutputError
from coreaug.runfolder import _MARKERS, DIAGNOSTICS_CSV, METRICS_CSV, RunFolder, is_run_folder  # noqa: F401


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """Read one run folder → ``{"dir", "config", "results", "metrics", "diagnostics"}`` (DataFrames;
    ``diagnostics`` is empty for runs without ``diagnostics.csv``)."""
    d = Path(run_dir)
    folder = RunFolder(d)
    res_path = folder.results_path
    if not res_path.is_file():
        raise ConfigError(f"{d} is not a finished run folder (no results.json)")
    try:
        results = json.loads(res_path.read_text(encoding="utf-8"))
        config = json.loads(folder.config_path.read_text(encoding="utf-8")) if folder.config_path.is_file() else {}
        metrics = _csv(folder.file(METRICS_CSV))
        diagnostics = _csv(folder.file(DIAGNOSTICS_CSV))
    except (json.JSONDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read run folder {d}: {type(exc).__name__}") from None
    _check_results(results, res_path)
    if not isinstance(config, dict):
        raise ConfigError(f"{d / 'config.json'} is not a JSON object; the run folder is damaged")
    _check_columns(metrics, folder.file(METRICS_CSV))
    return {"dir": str(d), "config": config, "results": results, "metrics": metrics, "diagnostics": diagnostics}


#: results.json fields a report reads as numbers (null allowed where a run has none, e.g. no epoch yet)
_NUMERIC_RESULTS: tuple[str, ...] = (
    "final_test_acc", "best_test_acc", "wall_clock_total", "train_time_total", "selection_time_total",
    "examples_seen_total", "epochs_done",
)
#: metrics.csv columns the report plots or sums
_NUMERIC_METRICS: tuple[str, ...] = ("epoch", "test_acc", "wall_clock")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def _check_results(results: Any, path: Path) -> None:
    """``results.json`` is an object whose accuracy and time fields are finite numbers (or null)."""
    if not isinstance(results, dict):
        raise ConfigError(f"{path} is not a JSON object (got {type(results).__name__}); the run folder is damaged")
    for key in _NUMERIC_RESULTS:
        v = results.get(key)
        if v is not None and not _is_number(v):
            raise ConfigError(f"{path}: {key} must be a finite number, got {v!r}; the run folder is damaged")


def _check_columns(metrics: pd.DataFrame, path: Path) -> None:
    """The plotted ``metrics.csv`` columns are present and numeric (a shifted or garbled file is refused)."""
    if metrics.empty:
        return
    for col in _NUMERIC_METRICS:
        if col not in metrics.columns:
            raise ConfigError(f"{path} has no {col!r} column; the run folder is damaged")
        if not pd.api.types.is_numeric_dtype(metrics[col]) or not metrics[col].notna().all():
            raise ConfigError(f"{path}: column {col!r} holds non-numbers; the run folder is damaged")


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Expand ``paths``: a run folder is kept; a folder of run folders is expanded one level (sorted).

    A run folder reached more than once (named twice, named and inside a named folder, through a symlink)
    is kept once, at its first place; :func:`find_runs_once` also says which were dropped."""
    return find_runs_once(paths)[0]


def find_runs_once(paths: Iterable[str | Path]) -> tuple[list[Path], list[tuple[Path, Path]]]:
    """:func:`find_runs` and the run folders it left out as repeats: ``(runs, [(repeat, kept), ...])``.

    Two paths are the same run when they name the same folder on disk (same device and inode, so a
    symlink or a bind mount is seen through), whatever their spelling."""
    found: list[Path] = []
    for p in map(Path, paths):
        if RunFolder(p).results_path.is_file():
            found.append(p)
        elif p.is_dir():
            kids = sorted(c for c in p.iterdir() if RunFolder(c).results_path.is_file())
            if not kids:
                raise ConfigError(f"{p} holds no finished run (no results.json in it or its sub-folders)")
            found.extend(kids)
        else:
            raise ConfigError(f"run folder {p} does not exist")
    if not found:
        raise ConfigError("no run folders given")
    return unique_folders(found)


def folder_identity(path: str | Path) -> tuple[int, int] | str:
    """What makes two paths one folder: ``(device, inode)`` (symlinks followed), else the resolved path."""
    try:
        st = Path(path).stat()
    except OSError:
        return str(Path(path).resolve())
    return (st.st_dev, st.st_ino)


def unique_folders(folders: Iterable[Path]) -> tuple[list[Path], list[tuple[Path, Path]]]:
    """``folders`` without repeats of the same folder on disk (first kept) and the ``(repeat, kept)`` pairs."""
    kept: dict[Any, Path] = {}
    repeats: list[tuple[Path, Path]] = []
    for f in folders:
        first = kept.setdefault(folder_identity(f), f)
        if first is not f:
            repeats.append((f, first))
    return list(kept.values()), repeats


def repeats_note(repeats: Sequence[tuple[Path, Path]], k: int = 3) -> str:
    """One line: ``N run folder(s) reached more than once, counted once: a (also as b), …``."""
    shown = ", ".join(f"{kept} (reached twice)" if str(rep) == str(kept) else f"{kept} (also as {rep})"
                      for rep, kept in repeats[:k])
    more = f", … +{len(repeats) - k} more" if len(repeats) > k else ""
    return f"{len(repeats)} run folder(s) reached more than once, counted once: {shown}{more}"


#: Files only a run folder of ``coreaug train`` holds (with ``config.json``: its per-epoch files too).
#: Files that mark a folder as a run's (see :func:`coreaug.runfolder.is_run_folder`).
RUN_FOLDER_MARKERS: tuple[str, ...] = _MARKERS


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def check_report_folder(out_dir: str | Path, run_dirs: Iterable[str | Path] = ()) -> Path:
    """Refuse (one-line :class:`OutputError`) a report folder that is, or lies inside, a run folder: one of
    ``run_dirs`` or any folder that :func:`is_run_folder`. A report never writes into a run folder, so it
    can never overwrite a run's own files (``diagnostics.csv``, ``metrics.csv``, …)."""
    out = Path(out_dir)
    runs = {folder_identity(d): Path(d) for d in run_dirs}
    for folder in [out, *out.resolve().parents]:
        if not folder.is_dir():
            continue
        run = runs.get(folder_identity(folder))
        if run is not None or is_run_folder(folder):
            where = ("is a run folder" if folder_identity(folder) == folder_identity(out)
                     else f"is inside run folder {run or folder}")
            raise OutputError(f"report folder {out} {where}: a report never writes into a run folder; "
                              "choose another --out")
    return out
