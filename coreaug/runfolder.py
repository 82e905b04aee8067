"""A run folder's one owner: its layout, lock, resume state, "finished", results and "same configuration".

What ``coreaug train`` writes into ``RUN_DIR`` (and what ``coreaug report``, ``coreaug sweep`` and the
figures read) is named here and nowhere else::

    config.json        the resolved configuration (written once, before the first epoch)
    metrics.csv/.jsonl one row per epoch
    checkpoint.pt      written atomically after every epoch; ``--resume`` continues from it
    results.json       final/best accuracy, time and cost totals (written when the run completes)
    diagnostics.csv/.jsonl  spectral diagnostics every K epochs, when enabled
    .coreaug.lock      the OS lock of a live run (:mod:`coreaug.runlock`)

Two configurations are the same run when every field that enters the config hash is equal
(:func:`config_differences`; a field missing from an older ``config.json`` counts as its default):
``--resume``, the sweep's skip/restart rules and the report all use that one definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from coreaug.errors import CheckpointError, ConfigError

__all__ = [
    "RunFolder", "CONFIG", "RESULTS", "CHECKPOINT", "METRICS_CSV", "METRICS_JSONL", "DIAGNOSTICS_CSV",
    "DIAGNOSTICS_JSONL", "RUN_FILES", "FOLDER_STATES", "FolderState", "config_differences", "results_differences", "same_config",
    "is_run_folder",
]

CONFIG = "config.json"
RESULTS = "results.json"
CHECKPOINT = "checkpoint.pt"
METRICS_CSV = "metrics.csv"
METRICS_JSONL = "metrics.jsonl"
DIAGNOSTICS_CSV = "diagnostics.csv"
DIAGNOSTICS_JSONL = "diagnostics.jsonl"
LOCK_NAME = ".coreaug.lock"  # the OS lock of a live run (coreaug.runlock)
#: The files a run writes into its folder.
RUN_FILES: tuple[str, ...] = (CHECKPOINT, CONFIG, METRICS_CSV, METRICS_JSONL, RESULTS, DIAGNOSTICS_CSV,
                              DIAGNOSTICS_JSONL)
#: Any of these marks a folder as a run's (finished, running or stopped) …
_MARKERS: tuple[str, ...] = (RESULTS, CHECKPOINT, METRICS_JSONL, LOCK_NAME)
#: … and so does config.json beside any of these.
_WITH_CONFIG: tuple[str, ...] = (METRICS_CSV, DIAGNOSTICS_CSV, DIAGNOSTICS_JSONL)


def config_differences(saved: Mapping[str, Any] | None, cfg: Any) -> list[str]:
    """How a run folder's ``config.json`` (``saved``) differs from ``cfg`` in the fields that enter the config
    hash, as ``"epochs 3 != 2"`` (saved value first). A field the saved config lacks (added to TrainConfig
    after that run) counts as its default; a saved field TrainConfig no longer has is a difference."""
    from coreaug.train.config import _HASH_EXCLUDED, TrainConfig, config_fields

    if not isinstance(saved, Mapping):
        return [f"no readable {CONFIG}"]
    saved = _normalized(saved)
    defaults = TrainConfig()
    mine = cfg.to_dict()
    out = []
    for f in config_fields():
        if f.name in _HASH_EXCLUDED:
            continue
        theirs = saved[f.name] if f.name in saved else getattr(defaults, f.name)
        if theirs != mine[f.name]:
            out.append(f"{f.name} {theirs!r} != {mine[f.name]!r}")
    out += [f"unknown key {k!r}" for k in sorted(set(saved) - set(mine))]
    return out


def _normalized(saved: Mapping[str, Any]) -> Mapping[str, Any]:
    """``saved`` as validation would resolve it (``"DIGITS"`` → ``"digits"``, a selector alias → its name, YAML
    numbers → ints), or unchanged when it does not validate (its differences are then reported as they are)."""
    from coreaug.errors import CoreaugError
    from coreaug.train.config import config_from_dict

    try:
        return config_from_dict(saved).to_dict()
    except CoreaugError:
        return saved


def same_config(saved: Mapping[str, Any] | None, cfg: Any) -> bool:
    """Whether a run folder's ``config.json`` describes ``cfg`` (no :func:`config_differences`)."""
    return not config_differences(saved, cfg)


#: The fields of ``results.json`` that repeat the configuration (checked by :func:`results_differences`).
_RESULT_FIELDS: tuple[str, ...] = ("dataset", "model", "method", "seed", "epochs", "label_noise")


def results_differences(results: Mapping[str, Any], cfg: Any) -> list[str]:
    """Where a finished run's ``results.json`` contradicts ``cfg`` (a results.json from another run): its
    configuration fields, the epochs done and, when it is not ``cfg``'s, its config hash."""
    expect = {k: getattr(cfg, k) for k in _RESULT_FIELDS}
    if cfg.uses_subset:
        expect.update(selector=cfg.selector, fraction=cfg.fraction)
    expect["epochs_done"] = cfg.epochs
    why = [f"results.json {k} {results[k]!r} != {v!r}" for k, v in expect.items() if k in results and results[k] != v]
    if "config_hash" in results and results["config_hash"] != cfg.hash():
        why.append(f"results.json config_hash {results['config_hash']!r} != {cfg.hash()!r}")
    return why


@dataclass
class FolderState:
    """What a run folder holds for a configuration (:meth:`RunFolder.state`), one of :data:`FOLDER_STATES`.

    Attributes:
        kind: the state (see :data:`FOLDER_STATES`).
        why: for the refused kinds, the differences or the damage, one short phrase each.
        results: ``results.json`` of a completed run (``finished`` and ``finished-other``).
        files: the run files in the folder.
    """

    kind: str
    why: tuple[str, ...] = ()
    results: dict[str, Any] | None = None
    files: tuple[str, ...] = ()


#: The states of a run folder, in the order :meth:`RunFolder.state` tells them apart.
FOLDER_STATES: dict[str, str] = {
    "not-a-folder": "the path is a file",
    "empty": "no run files (absent, empty, or only the lock and temp files of killed writes)",
    "finished": "a completed run of this configuration (its config.json and results.json agree)",
    "finished-other": "a completed run of another configuration, or one that cannot be checked",
    "damaged": "a folder in place of a run file",
    "other-config": "an unfinished run whose config.json is another configuration's",
    "checkpoint": "an unfinished run of this configuration with a checkpoint (it resumes)",
    "restart": "a run of this configuration stopped before its first checkpoint (it starts over with config.json)",
    "unreadable-config": "config.json that cannot be read, and no checkpoint",
    "foreign": "files, but neither a checkpoint, nor config.json, nor a finished run",
}


def is_run_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds a run of ``coreaug train`` (finished, running or stopped)."""
    d = Path(folder)
    if any((d / m).is_file() for m in _MARKERS):
        return True
    return (d / CONFIG).is_file() and any((d / m).is_file() for m in _WITH_CONFIG)


def _listing(names: Sequence[str], k: int = 3) -> str:
    return ", ".join(names[:k]) + (", …" if len(names) > k else "")


class RunFolder:
    """One run folder: where each file lives, whether it holds a finished run, how a run starts in it.

    Args:
        path: the folder (it need not exist yet).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def file(self, name: str) -> Path:
        """The path of one of :data:`RUN_FILES`."""
        if name not in RUN_FILES:
            raise ValueError(f"{name!r} is not a run file; one of {RUN_FILES}")
        return self.path / name

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def results_path(self) -> Path:
        return self.path / RESULTS

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT

    # -- reading ---------------------------------------------------------------------------------
    def run_files(self) -> list[str]:
        """Names in the folder that belong to a run (not the lock, not stale temp files of killed writes)."""
        from coreaug.io import TEMP_FILE_PATTERN
        from coreaug.runlock import is_run_file

        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir()
                      if is_run_file(p.name) and not TEMP_FILE_PATTERN.fullmatch(p.name))

    def saved_config(self) -> dict[str, Any] | None:
        """``config.json`` as a dict, or ``None`` when it is missing or unreadable."""
        from coreaug.io import read_json_dict

        return read_json_dict(self.config_path) if self.config_path.exists() else None

    def finished_results(self) -> dict[str, Any] | None:
        """``results.json`` of a completed run, or ``None`` when it is missing, unreadable or not completed."""
        from coreaug.io import read_json_dict

        results = read_json_dict(self.results_path)
        return results if results is not None and results.get("completed") else None

    def started(self) -> bool:
        """A run was started here: it wrote its config or a checkpoint."""
        return self.config_path.is_file() or self.checkpoint_path.is_file()

    def epochs_recorded(self) -> int | None:
        """How many epochs ``metrics.jsonl`` holds (``None`` without one)."""
        path = self.path / METRICS_JSONL
        if not path.is_file():
            return None
        return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())

    def state(self, cfg: Any) -> FolderState:
        """What this folder holds for a run of ``cfg`` (:data:`FOLDER_STATES`): the one set of rules behind
        ``coreaug train --resume`` (:meth:`start_mode`) and the sweep's plan (:func:`coreaug.sweep.plan_run`).

        A completed run counts as ``cfg``'s only when its ``config.json`` and its ``results.json`` both agree
        with ``cfg`` (:func:`config_differences`, :func:`results_differences`); a config hash alone is not
        trusted. An unfinished run resumes from its checkpoint (whose own config hash train checks) unless its
        ``config.json`` is another configuration's."""
        if self.path.exists() and not self.path.is_dir():
            return FolderState("not-a-folder")
        files = tuple(self.run_files())
        if not files:
            return FolderState("empty")
        saved = self.saved_config()
        results = self.finished_results()
        if results is not None:
            # config.json must agree, unless it is gone and results.json names this config's hash
            vouched = saved is None and results.get("config_hash") == cfg.hash()
            why = tuple(([] if vouched else config_differences(saved, cfg)) + results_differences(results, cfg))
            return FolderState("finished-other" if why else "finished", why, results, files)
        for name in RUN_FILES:  # a folder in place of a run file would fail only after an epoch of work
            if (self.path / name).exists() and not (self.path / name).is_file():
                return FolderState("damaged", (f"{self.path / name} is not a file",), files=files)
        if saved is not None and (why := config_differences(saved, cfg)):
            return FolderState("other-config", tuple(why), files=files)
        if self.checkpoint_path.is_file():
            return FolderState("checkpoint", files=files)
        if self.config_path.exists():
            kind = "restart" if saved is not None else "unreadable-config"
            return FolderState(kind, () if saved is not None else ("its config.json is unreadable",), files=files)
        return FolderState("foreign", files=files)

    def start_mode(self, resume: bool, cfg: Any, *, created: bool) -> str:
        """How a run of ``cfg`` starts here (the folder is locked): ``"fresh"``, ``"checkpoint"``
        (resume), ``"restart"`` (``resume`` of a run stopped before its first checkpoint: epoch 0 with
        the same config) or ``"finished"`` (``resume`` of a completed run of this config: nothing to do,
        nothing is written). ``resume`` into a folder that did not exist (``created``) starts the run.
        The rules are :meth:`state`'s.

        Raises:
            ConfigError: not ``resume`` and the folder holds a run's files.
            CheckpointError: ``resume`` and the folder holds another configuration's run, a folder in
                place of a run file, a damaged ``config.json``, or files but neither checkpoint nor config.
        """
        if not resume:
            if self.run_files():
                raise ConfigError(f"run folder {self.path} is not empty; pass --resume to continue it or choose "
                                  "another --out")
            return "fresh"
        if created:
            return "fresh"
        state = self.state(cfg)
        if state.kind in ("empty", "finished", "checkpoint", "restart"):
            return "fresh" if state.kind == "empty" else state.kind
        if state.kind == "damaged":
            raise CheckpointError(f"cannot resume: {state.why[0]}; move it away and pass --resume again")
        if state.kind == "finished-other":
            raise CheckpointError(f"cannot resume: {self.path} holds a completed run of another configuration "
                                  f"({_listing(list(state.why))}); use the same settings or a new --out folder")
        if state.kind == "other-config":
            raise CheckpointError(f"{self.config_path} was written by another configuration "
                                  f"({_listing(list(state.why))}); use the same settings or a new --out folder")
        if state.kind == "unreadable-config":
            raise CheckpointError(f"cannot resume from {self.path}: {self.config_path} is unreadable (not a JSON "
                                  "object); move it away or use a new --out folder")
        raise CheckpointError(f"cannot resume: no {CHECKPOINT} or {CONFIG} in {self.path}")

    # -- writing ---------------------------------------------------------------------------------
    def lock(self):
        """Take the run folder's exclusive lock (:func:`coreaug.runlock.acquire_run_lock`)."""
        from coreaug.runlock import acquire_run_lock

        return acquire_run_lock(self.path)

    def write_config(self, cfg: Any) -> Path:
        from coreaug.io import write_json_atomic

        self.path.mkdir(parents=True, exist_ok=True)
        return write_json_atomic(self.config_path, cfg.to_dict()) or self.config_path

    def write_results(self, results: Mapping[str, Any]) -> Path:
        from coreaug.io import write_json_atomic

        return write_json_atomic(self.results_path, dict(results)) or self.results_path

    def write_metrics(self, rows: Iterable[Mapping[str, Any]], fields: Sequence[str]) -> None:
        """``metrics.csv`` (projected on ``fields``) and ``metrics.jsonl`` (strict JSON: NaN → null), atomically."""
        from coreaug.io import csv_text, dumps_json, write_text_atomic

        rows = list(rows)
        write_text_atomic(self.path / METRICS_CSV, csv_text(rows, fields))
        write_text_atomic(self.path / METRICS_JSONL, "".join(dumps_json(r) + "\n" for r in rows))
