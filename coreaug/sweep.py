"""Sweeps: a grid of training runs (methods × selectors × fractions × seeds), run one after another.

A grid is a :class:`GridSpec`: a base (``preset`` + optional config file + fixed ``overrides`` such as
``model``/``epochs``/``reselect_every``), the product of three axes (methods × selectors × fractions) and/or
explicit ``cells`` (each a mapping of config keys: per-cell pruning and the like), all times ``seeds``.
:func:`expand_grid` turns it into :class:`RunPoint` s, each with a deterministic, readable folder name::

    subset-only__coreset__f0.1__s0      a subset method: method__selector__f<fraction>__s<seed>
    full-aug__s0                        full / full-aug: once per seed (no selector, no fraction)
    full-aug__infobatch-r0.3__s0        with dynamic pruning (pruning_label: the method and its ratio / keep)
    full-aug__lr-0.05__s0               a cell's other keys, key-value

:func:`run_sweep` runs them into ``OUT/<name>/`` with :func:`coreaug.train.train` in this process,
skipping completed runs (``results.json`` with ``completed: true``, whose ``config.json`` and
``results.json`` both describe the grid point), resuming interrupted ones (``checkpoint.pt`` present),
starting over those stopped before their first checkpoint (``config.json`` of the same configuration:
the rules of ``coreaug train --resume``) and reporting a failed run in one line while the sweep goes on.
It runs them in this process, one after another, or through a launcher (:mod:`coreaug.launch`: ``--jobs N``
child processes, SLURM jobs through submitit) by the same rules.
Distinct grid points always get distinct folders; one sweep at a time writes into ``OUT`` (the sweep
lock, :func:`coreaug.runlock.acquire_sweep_lock`). Grid presets (:data:`GRID_PRESETS`) and YAML grid
files use the same keys as :class:`GridSpec`; the selector ``all`` expands to every selector the
training config accepts.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from coreaug.errors import ConfigError, CoreaugError
from coreaug.runfolder import RunFolder, _listing

#: Keys a grid (preset, YAML file) may set.
GRID_KEYS: tuple[str, ...] = ("preset", "config", "methods", "selectors", "fractions", "seeds", "overrides", "cells",
                              "slurm_partition", "slurm_time", "slurm_gpus")
#: Grid keys that say where cells run (``--launcher submitit``), not what they compute.
LAUNCH_KEYS: tuple[str, ...] = ("slurm_partition", "slurm_time", "slurm_gpus")
#: Config fields that are grid axes and so cannot be fixed overrides.
AXIS_FIELDS: frozenset[str] = frozenset({"method", "selector", "fraction", "seed"})
#: Methods that do not select a subset: one run per seed.
NON_SUBSET_NOTE = "full / full-aug train on all n examples: one run per seed, no selector or fraction"

# Grid presets. Each is a partial GridSpec (keys of GRID_KEYS); flags override them.
GRID_PRESETS: dict[str, dict[str, Any]] = {
    # The paper's CIFAR10 comparison (PAPER.md §4): coreset vs random vs max-loss subsets, regimes (b)
    # coreset-only and (c) random + augmented coreset, full augmentation as the reference, ResNet20.
    # The paper's subset grid and seeds are NOT FOUND: 10% is the ICLR version's headline size (6.3x,
    # +7.7% over max-loss); 3 seeds are our choice. Widen with --fractions / --seeds.
    "paper-cifar10": {
        "preset": "cifar10-resnet20",
        "methods": ["subset-only", "random+aug-subset", "full-aug"],
        "selectors": ["coreset", "random", "maxloss"],
        "fractions": [0.1],
        "seeds": [0, 1, 2],
        "overrides": {},
    },
    # Every selector on digits with the MLP (bench_train_digits.py's schedule: 15 epochs, step at 11,
    # R = 5), regimes (b) and (c) at 10% and 30%, 5 seeds, plus full-aug and full references.
    "digits-selectors": {
        "preset": "digits-quick",
        "methods": ["full", "full-aug", "subset-only", "random+aug-subset"],
        "selectors": ["all"],
        "fractions": [0.1, 0.3],
        "seeds": [0, 1, 2, 3, 4],
        "overrides": {"model": "mlp", "epochs": 15, "milestones": [11], "reselect_every": 5, "threads": 1},
    },
    # Augmented coresets against dynamic data pruning (issue 20): the full-augmentation reference; InfoBatch
    # (r = 0.3, 0.5) and UCB pruning (keep 0.7) thinning the full-aug epoch, i.e. pruning *with* strong
    # augmentation, so every method sees the same strong augmentation; random subsets and augmented coresets
    # (regime (b), subset-only) at 10% and 30%. 5 seeds. The dataset and model are the preset's (digits-quick:
    # digits, the small CNN) unless --dataset/--model/--preset say otherwise.
    "vs-pruning": {
        "preset": "digits-quick",
        "cells": [
            {"method": "full-aug"},
            {"method": "full-aug", "pruning": "infobatch", "prune_ratio": 0.3},
            {"method": "full-aug", "pruning": "infobatch", "prune_ratio": 0.5},
            {"method": "full-aug", "pruning": "ucb", "prune_keep": 0.7},
            {"method": "subset-only", "selector": "random", "fraction": 0.1},
            {"method": "subset-only", "selector": "random", "fraction": 0.3},
            {"method": "subset-only", "selector": "coreset", "fraction": 0.1},
            {"method": "subset-only", "selector": "coreset", "fraction": 0.3},
        ],
        "seeds": [0, 1, 2, 3, 4],
        # spectral diagnostics off: their probe passes would add the same cost to every method
        "overrides": {"diagnostics_every": 0},
    },
}


def known_methods() -> tuple[str, ...]:
    from coreaug.train import config

    return tuple(config.METHODS)


def known_selectors() -> tuple[str, ...]:
    """Every selector name ``TrainConfig.selector`` accepts (read at call time: the registry may grow)."""
    from coreaug.train import config

    return tuple(config.SELECTORS)


def _subset_methods() -> tuple[str, ...]:
    from coreaug.train import config

    return tuple(config.SUBSET_METHODS)


# --------------------------------------------------------------------------------------- parsing
def parse_seeds(text: str | int | Sequence[Any]) -> list[int]:
    """``"0-4"`` → [0..4]; ``"0,2,5"``; ``"0-2,7"``; a list of ints; raise ConfigError otherwise."""
    if isinstance(text, bool):
        raise ConfigError(f"bad seed list {text!r}: use e.g. 0-4 or 0,1,2")
    if isinstance(text, int):
        return [text]
    if isinstance(text, (list, tuple)):
        out: list[int] = []
        for v in text:
            out.extend(parse_seeds(v))
        return _dedup(out)
    s = str(text).strip()
    out = []
    for part in s.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not m:
            raise ConfigError(f"bad seed list {s!r}: use e.g. 0-4 or 0,1,2 (non-negative integers)")
        lo, hi = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
        if hi < lo:
            raise ConfigError(f"bad seed range {part!r}: the end is below the start")
        out.extend(range(lo, hi + 1))
    if not out:
        raise ConfigError(f"bad seed list {s!r}: no seeds")
    return _dedup(out)


def parse_fractions(value: str | float | Sequence[Any]) -> list[float]:
    """``"0.1,0.3"`` or a list → floats in (0, 1]; raise ConfigError otherwise."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    out = []
    for v in items:
        try:
            f = float(str(v).strip()) if not isinstance(v, (int, float)) or isinstance(v, bool) else float(v)
        except ValueError:
            raise ConfigError(f"bad subset fraction {v!r}: use numbers in (0, 1], e.g. 0.1,0.3") from None
        if isinstance(v, bool) or not 0.0 < f <= 1.0:
            raise ConfigError(f"subset fraction must be in (0, 1], got {v!r}")
        out.append(f)
    if not out:
        raise ConfigError("no subset fractions given")
    return _dedup(out)


def parse_names(value: str | Sequence[Any], kind: str) -> list[str]:
    """``"a,b"`` or a list → names, validated against the known methods / selectors (``all`` allowed for selectors)."""
    items = [str(v).strip() for v in (value if isinstance(value, (list, tuple)) else str(value).split(","))]
    items = [v for v in items if v]
    if not items:
        raise ConfigError(f"no {kind}s given")
    known = known_methods() if kind == "method" else known_selectors()
    out: list[str] = []
    for v in items:
        if kind == "selector" and v not in known and v != "all":
            v = _canonical_selector(v)
        if kind == "selector" and v == "all":
            out.extend(known)
        elif v not in known:
            extra = " (or 'all')" if kind == "selector" else ""
            raise ConfigError(f"unknown {kind} {v!r}; choose one of: {', '.join(known)}{extra}")
        else:
            out.append(v)
    return _dedup(out)


def _canonical_selector(name: str) -> str:
    """A selector alias (e.g. ``k-center``) → its registered name (unknown names are returned as given)."""
    from coreaug.select.registry import resolve_selector

    try:
        return resolve_selector(name)
    except CoreaugError:
        return name  # reported by the caller with the list of names


def _dedup(seq):
    seen, out = set(), []
    for v in seq:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


# ------------------------------------------------------------------------------------ the grid
#: Keys a cell of ``cells`` may not set: the seed is the grid's ``seeds`` axis.
_CELL_FORBIDDEN: frozenset[str] = frozenset({"seed"})
#: Cell keys that the folder name spells out through the method / selector / fraction / pruning parts.
_NAMED_KEYS: frozenset[str] = frozenset({"method", "selector", "fraction", "pruning", "prune_ratio", "prune_delta",
                                         "prune_keep", "prune_epsilon", "prune_c", "prune_window"})


@dataclass
class GridSpec:
    """A sweep grid: a base config (preset + config file + fixed overrides), the product of three axes
    (``methods`` × ``selectors`` × ``fractions``) and/or explicit ``cells`` (each a mapping of config keys,
    e.g. ``{"method": "full-aug", "pruning": "infobatch", "prune_ratio": 0.3}``), all times ``seeds``.

    Without ``cells`` the product defaults to subset-only × coreset × 0.1 (as before); with ``cells`` there
    is a product only where ``methods`` is given. A cell's keys win over the fixed ``overrides``.
    Launch settings (``slurm_*``) ride along for ``--launcher submitit``; they do not change any run.
    """

    preset: str | None = None
    config: str | None = None
    methods: list[str] | None = None
    selectors: list[str] | None = None
    fractions: list[float] | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: dict[str, Any] = field(default_factory=dict)
    cells: list[dict[str, Any]] = field(default_factory=list)
    slurm_partition: str | None = None
    slurm_time: str | int | None = None
    slurm_gpus: int | None = None
    name: str | None = None  # the grid preset it came from, if any

    def normalized(self) -> "GridSpec":
        """Parse/validate every axis (strings allowed) → a new GridSpec; raise ConfigError on bad input."""
        from coreaug.train.config import flat_values

        if not isinstance(self.overrides, Mapping):
            raise ConfigError(f"grid overrides must be a mapping of config keys to values, got {self.overrides!r}")
        overrides = flat_values(self.overrides, "grid overrides")  # flat keys, or group sections
        axes = sorted(set(overrides) & AXIS_FIELDS)
        if axes:
            raise ConfigError(f"{', '.join(axes)} is a grid axis, not a fixed override: use --methods/--selectors/"
                              "--fractions/--seeds, or grid cells")
        cells = normalize_cells(self.cells)
        if cells and _unset(self.methods):  # explicit cells only: no product
            if not (_unset(self.selectors) and _unset(self.fractions)):
                raise ConfigError("selectors/fractions span a product with methods: with grid cells, give --methods "
                                  "too (or put the selector and fraction in the cells)")
            methods, selectors, fractions = [], [], []
        else:
            methods = parse_names(["subset-only"] if self.methods is None else self.methods, "method")
            selectors = parse_names(["coreset"] if self.selectors is None else self.selectors, "selector")
            fractions = parse_fractions([0.1] if self.fractions is None else self.fractions)
        return replace(self, methods=methods, selectors=selectors, fractions=fractions, seeds=parse_seeds(self.seeds),
                       overrides=overrides, cells=cells)


def _unset(value: Any) -> bool:
    """An axis not given: ``None`` or an empty list (a normalized grid of explicit cells only)."""
    return value is None or (isinstance(value, (list, tuple)) and not value)


def normalize_cells(cells: Any) -> list[dict[str, Any]]:
    """Check the explicit cells of a grid: a list of mappings of config keys (not ``seed``), no two equal."""
    from coreaug.train.config import flat_values

    if cells is None:
        return []
    if not isinstance(cells, (list, tuple)):
        raise ConfigError(f"grid cells must be a list of mappings of config keys, got {type(cells).__name__}")
    out: list[dict[str, Any]] = []
    for i, cell in enumerate(cells, 1):
        if not isinstance(cell, Mapping) or not cell:
            raise ConfigError(f"grid cell {i} must be a non-empty mapping of config keys, got {cell!r}")
        cell = flat_values(cell, f"grid cell {i}")  # flat keys, or group sections
        if set(cell) & _CELL_FORBIDDEN:
            raise ConfigError(f"grid cell {i} sets seed: seeds are the grid's 'seeds' axis (--seeds)")
        out.append(dict(cell))
    return out


@dataclass(frozen=True)
class RunPoint:
    """One grid point: its folder name and the axis values (``selector``/``fraction`` None for full/full-aug);
    ``extra`` holds the other config keys of an explicit grid cell (pruning, …)."""

    name: str
    method: str
    selector: str | None
    fraction: float | None
    seed: int
    extra: dict[str, Any] = field(default_factory=dict, hash=False)
    #: the resolved config, kept from when the point was made (not part of the point's identity)
    cfg: Any = field(default=None, compare=False, hash=False, repr=False)

    def axis_overrides(self) -> dict[str, Any]:
        d: dict[str, Any] = {"method": self.method, "seed": self.seed}
        if self.selector is not None:
            d.update(selector=self.selector, fraction=self.fraction)
        d.update(self.extra)
        return d


def fraction_label(fraction: float) -> str:
    """The fraction as it appears in a folder name: ``%g`` (``0.1``, ``1``) where that reads back as the same
    number, else the shortest exact form (``0.1000001``), so that two fractions never share a folder."""
    short = f"{fraction:g}"
    return short if float(short) == fraction else repr(float(fraction))


def value_label(value: Any) -> str:
    """A config value as it appears in a folder name (numbers as :func:`fraction_label`; no path separators)."""
    import json

    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = fraction_label(value)
    elif isinstance(value, (int, str)):
        text = str(value)
    elif isinstance(value, (list, tuple)):
        text = ",".join(value_label(v) for v in value)
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return re.sub(r"[\s/\\]+", "_", text) or "_"


def pruning_label(cfg: Any) -> str | None:
    """The pruning part of a folder name: ``infobatch-r0.3``, ``ucb-k0.7``, ``epsilon-greedy-k0.7-e0.1`` (plus
    ``-d``/``-c``/``-w`` where δ, c or the window differ from their defaults); ``None`` without pruning."""
    from coreaug.train.config import TrainConfig

    if cfg.pruning == "none":
        return None
    default = TrainConfig()
    if cfg.pruning == "infobatch":
        parts = [("r", cfg.prune_ratio, None), ("d", cfg.prune_delta, default.prune_delta)]
    else:
        parts = [("k", cfg.prune_keep, None)]
        if cfg.pruning == "epsilon-greedy":
            parts.append(("e", cfg.prune_epsilon, None))
        parts += [("c", cfg.prune_c, default.prune_c), ("w", cfg.prune_window, default.prune_window)]
    return "-".join([cfg.pruning] + [f"{k}{value_label(float(v) if k != 'w' else v)}" for k, v, d in parts
                                     if d is None or v != d])


def run_name(method: str, selector: str | None, fraction: float | None, seed: int,
             tags: Sequence[str] = ()) -> str:
    """``method__selector__f<fraction>[__tag…]__s<seed>`` (subset methods) or ``method[__tag…]__s<seed>``; tags
    name the pruning (:func:`pruning_label`) and a cell's other keys (``lr-0.05``). Distinct grid points get
    distinct names (:func:`fraction_label`, :func:`_check_names_unique`)."""
    head = method if selector is None else f"{method}__{selector}__f{fraction_label(fraction)}"
    return "__".join([head, *tags, f"s{seed}"])


def expand_grid(spec: GridSpec) -> list[RunPoint]:
    """Every run of the grid, seed-major (all configurations of seed 0 first, so a sweep cut short
    still has whole seeds): the product points, then the explicit cells. Non-subset methods appear once
    per seed. Every point's config is resolved (and so validated) here; a bad cell fails in one line."""
    spec = spec.normalized()
    subset = set(_subset_methods())
    points: list[RunPoint] = []
    for seed in spec.seeds:
        for method in spec.methods:
            if method in subset:
                for selector in spec.selectors:
                    for fraction in spec.fractions:
                        points.append(_product_point(spec, method, selector, fraction, seed))
            else:
                points.append(_product_point(spec, method, None, None, seed))
        points.extend(_cell_point(spec, i, cell, seed) for i, cell in enumerate(spec.cells, 1))
    _check_names_unique(points)
    return points


def _product_point(spec: GridSpec, method: str, selector: str | None, fraction: float | None,
                   seed: int) -> RunPoint:
    """A point of the methods × selectors × fractions product (named with its pruning, if the overrides set one)."""
    point = RunPoint(run_name(method, selector, fraction, seed), method, selector, fraction, seed)
    cfg = resolve_point(spec, point)
    tag = pruning_label(cfg)
    return replace(point, name=run_name(method, selector, fraction, seed, [tag]) if tag else point.name, cfg=cfg)


def _cell_point(spec: GridSpec, index: int, cell: Mapping[str, Any], seed: int) -> RunPoint:
    """The point of explicit cell ``index`` (1-based) at ``seed``, named from its resolved config."""
    from coreaug.train import resolve_config

    try:
        cfg = resolve_config(spec.preset, spec.config, {**spec.overrides, **cell, "seed": seed})
    except ConfigError as exc:
        raise ConfigError(f"grid cell {index} ({_cell_text(cell)}): {exc}") from None
    if not cfg.uses_subset and ({"selector", "fraction"} & set(cell)):
        raise ConfigError(f"grid cell {index} ({_cell_text(cell)}): {cfg.method} trains on all n examples; "
                          "drop its selector and fraction")
    selector, fraction = (cfg.selector, cfg.fraction) if cfg.uses_subset else (None, None)
    extra = {k: v for k, v in cell.items() if k not in ("method", "selector", "fraction")}
    tags = [t for t in [pruning_label(cfg)] if t]
    tags += [f"{k}-{value_label(v)}" for k, v in sorted(extra.items()) if k not in _NAMED_KEYS]
    return RunPoint(run_name(cfg.method, selector, fraction, seed, tags), cfg.method, selector, fraction, seed, extra,
                    cfg)


def _cell_text(cell: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in cell.items())


def _check_names_unique(points: Sequence[RunPoint]) -> None:
    """Raise ConfigError naming the first two grid points that would share a run folder."""
    seen: dict[str, RunPoint] = {}
    for p in points:
        other = seen.setdefault(p.name, p)
        if other is not p:
            raise ConfigError(f"grid points {other.axis_overrides()} and {p.axis_overrides()} would share the run "
                              f"folder {p.name}; make the axis values distinct")


def resolve_point(spec: GridSpec, point: RunPoint):
    """The validated :class:`~coreaug.train.config.TrainConfig` of one grid point (the one
    :func:`expand_grid` resolved, when the point came from there)."""
    from coreaug.train import resolve_config

    if point.cfg is not None:
        return point.cfg
    return resolve_config(spec.preset, spec.config, {**spec.overrides, **point.axis_overrides()})


def grid_from_mapping(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Check a grid mapping's keys (YAML file or preset) and return it as a dict."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"grid {source} must hold a mapping with keys: {', '.join(GRID_KEYS)}")
    unknown = sorted(set(data) - set(GRID_KEYS))
    if unknown:
        raise ConfigError(f"unknown grid key(s) {', '.join(map(repr, unknown))} in {source}; "
                          f"allowed: {', '.join(GRID_KEYS)}")
    if data.get("overrides") is not None and not isinstance(data["overrides"], Mapping):
        raise ConfigError(f"grid {source}: 'overrides' must be a mapping of config keys to values, "
                          f"got {type(data['overrides']).__name__}")
    return dict(data)


def read_grid_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) grid file → a grid mapping (raise ConfigError if missing or unreadable)."""
    from coreaug.train.config import read_config_file

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"grid file {path} does not exist")
    try:
        data = read_config_file(path)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("config file", "grid file")) from None
    return grid_from_mapping(data, f"file {path}")


def _flat_layer(overrides: Any, source: str) -> dict[str, Any]:
    """One layer of a grid's overrides (preset, file, flags) with its group sections flattened, so that the
    layers merge key by key (a flag's ``lr`` replaces a file's ``optimisation: {lr: …}``)."""
    if not overrides:
        return {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"grid overrides must be a mapping of config keys to values, got {overrides!r}")
    from coreaug.train.config import flat_values

    return flat_values(overrides, source)


def build_grid(grid: str | None = None, grid_file: str | Path | None = None,
               **flags: Any) -> GridSpec:
    """Grid preset ← grid file ← flags (``None`` flags are ignored; ``overrides`` are merged key by key)."""
    values: dict[str, Any] = {}
    if grid is not None:
        if grid not in GRID_PRESETS:
            raise ConfigError(f"unknown grid {grid!r}; choose one of: {', '.join(GRID_PRESETS)}")
        values = grid_from_mapping(GRID_PRESETS[grid], f"preset {grid!r}")
        values["overrides"] = _flat_layer(values.get("overrides"), f"the overrides of grid preset {grid!r}")
    if grid_file is not None:
        file_values = read_grid_file(grid_file)
        layer = _flat_layer(file_values.pop("overrides", None), f"the overrides of grid file {grid_file}")
        merged = {**(values.get("overrides") or {}), **layer}
        values.update(file_values)
        values["overrides"] = merged
    extra = _flat_layer(flags.pop("overrides", None), "the override flags")
    unknown = sorted(set(flags) - set(GRID_KEYS))
    if unknown:
        raise TypeError(f"unknown build_grid argument(s): {unknown}")
    values.update({k: v for k, v in flags.items() if v is not None})
    values["overrides"] = {**(values.get("overrides") or {}), **{k: v for k, v in extra.items() if v is not None}}
    spec = GridSpec(**values, name=grid)
    return spec.normalized()


# ------------------------------------------------------------------------------------- running
@dataclass
class PlannedRun:
    """A grid point, its resolved config, its folder and what the sweep will do with it."""

    point: RunPoint
    cfg: Any
    dir: Path
    action: str  # "run" | "skip" (completed) | "resume" (checkpoint present) | "conflict"
    detail: str = ""
    state: str = ""  # the folder's RunFolder.state kind when planned


def _conflict(d: Path, what: str, why: Sequence[str]) -> str:
    reasons = "; ".join(why[:3]) + (f"; +{len(why) - 3} more" if len(why) > 3 else "")
    return f"{d} holds {what} ({reasons}); delete it or use another OUT"


def plan_run(spec: GridSpec, point: RunPoint, out: Path) -> PlannedRun:
    """Resolve the point's config and decide: run, skip (completed), resume, or conflict.

    The folder's state is :meth:`coreaug.runfolder.RunFolder.state`, the rules of ``coreaug train --resume``,
    checked here before anything runs: a checkpoint resumes; without one, a folder with ``config.json`` starts
    over at epoch 0 with it (whatever else the killed run left: metrics, diagnostics); a folder with other
    files but no ``config.json`` is not ours. A completed run is skipped only when its ``config.json`` and
    its ``results.json`` both describe this grid point (a config hash alone is not trusted: it may be missing)."""
    cfg = resolve_point(spec, point)
    folder = RunFolder(out / point.name)
    state = folder.state(cfg)
    action, detail = _action(folder, cfg, state)
    return PlannedRun(point, cfg, folder.path, action, detail, state.kind)


def _action(folder: RunFolder, cfg: Any, state: Any) -> tuple[str, str]:
    """What the sweep does with a folder in ``state`` (:data:`coreaug.runfolder.FOLDER_STATES`): (action, detail)."""
    d, kind, why = folder.path, state.kind, list(state.why)
    if kind == "not-a-folder":
        return "conflict", f"{d} is a file, not a run folder; move it or use another OUT"
    if kind == "finished":
        return "skip", f"completed, final acc {state.results.get('final_test_acc', float('nan')):.4f}"
    if kind == "finished-other":
        return "conflict", _conflict(d, "a completed run of a different configuration", why)
    if kind == "other-config":
        return "conflict", _conflict(d, "an unfinished run of a different configuration", why)
    if kind in ("damaged", "unreadable-config"):
        return "conflict", _conflict(d, "an unfinished run", why)
    if kind == "checkpoint":  # train checks the checkpoint's own config hash
        done = folder.epochs_recorded()
        return "resume", f"checkpoint after epoch {'?' if done is None else done}/{cfg.epochs}"
    if kind == "restart":
        return "run", "restart (stopped before its first checkpoint)"
    if kind == "foreign":
        return "conflict", (f"{d} is not empty ({_listing(list(state.files))}) and holds no checkpoint, config.json "
                            "or finished run; delete it or use another OUT")
    return "run", ""


def plan_sweep(spec: GridSpec, out: str | Path, points: Sequence[RunPoint] | None = None) -> list[PlannedRun]:
    """:func:`plan_run` for every grid point (validates every config before anything runs); ``points``:
    the grid's :func:`expand_grid`, when the caller has it already."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"sweep output {out} exists and is not a folder")
    return [plan_run(spec, p, out) for p in (expand_grid(spec) if points is None else points)]


@dataclass
class SweepOutcome:
    """What :func:`run_sweep` did: the plan and, per run name, ``"ok"``/``"skipped"``/an error line."""

    planned: list[PlannedRun]
    status: dict[str, str]
    failed: list[str]
    seconds: float

    @property
    def completed_dirs(self) -> list[Path]:
        return [p.dir for p in self.planned if self.status.get(p.point.name) in ("ok", "skipped")]


def describe(p: PlannedRun) -> str:
    """One line of the dry-run listing."""
    label = {"run": "run", "skip": "skip", "resume": "resume", "conflict": "CONFLICT"}[p.action]
    return f"{label:<8} {p.point.name}" + (f"  ({p.detail})" if p.detail else "")


def run_sweep(planned: Sequence[PlannedRun], *, quiet_runs: bool = True,
              log: Callable[[str], None] = print,
              train_fn: Callable[..., dict[str, Any]] | None = None,
              deadline: float | None = None, launcher: Any = None) -> SweepOutcome:
    """Run the planned runs: one after another in this process, or through ``launcher``.

    A run that raises is reported in one line (``FAILED name: Error: message``) and the sweep goes on,
    except for a missing dataset, which would fail every run the same way and so stops the sweep
    (``DatasetNotFoundError`` is re-raised). ``KeyboardInterrupt`` stops it too (the interrupted run
    keeps its checkpoint and resumes next time). With ``deadline`` (a ``time.perf_counter()`` value) no
    run starts after it: those left are reported as ``not started`` (neither done nor failed).

    ``launcher`` (:mod:`coreaug.launch`; default :class:`~coreaug.launch.InProcess`, one cell after another
    with ``train_fn``; :class:`~coreaug.launch.LocalJobs` runs N cells at once as subprocesses,
    :class:`~coreaug.launch.SubmititLauncher` sends them to SLURM) runs the plan with the one loop of
    :meth:`coreaug.launch.Launcher.run`, reporting to a :class:`SweepTally`.

    The sweep folder of every planned run is locked (:func:`coreaug.runlock.acquire_sweep_lock`, re-entrant:
    ``coreaug sweep`` already holds it while planning) for the whole call; another live sweep into one of
    them raises :class:`~coreaug.errors.RunFolderBusyError` before anything runs.
    """
    import contextlib

    from coreaug.runlock import acquire_sweep_lock

    with contextlib.ExitStack() as locks:
        for folder in sorted({p.dir.parent for p in planned}, key=str):
            locks.enter_context(acquire_sweep_lock(folder))
        if launcher is None:
            from coreaug.launch import InProcess

            launcher = InProcess(train_fn, quiet=quiet_runs)
        tally = SweepTally(list(planned), log)
        launcher.run(list(planned), tally, deadline)
        return tally.outcome()


class SweepTally:
    """The bookkeeping every way of running a plan shares: per run ``"ok"``/``"skipped"``/an error line, the
    failed runs, and the log lines ``[i/total] name: …``."""

    def __init__(self, planned: Sequence[PlannedRun], log: Callable[[str], None]) -> None:
        self.planned = list(planned)
        self.log = log
        self.status: dict[str, str] = {}
        self.failed: list[str] = []
        self.t0 = time.perf_counter()
        self._index = {p.point.name: i for i, p in enumerate(self.planned, 1)}

    def tag(self, p: PlannedRun) -> str:
        width = len(str(len(self.planned)))
        return f"[{self._index[p.point.name]:>{width}}/{len(self.planned)}] {p.point.name}"

    def settle(self, p: PlannedRun, deadline: float | None) -> bool:
        """Record a run that needs no training (completed → skipped, conflict → failed, past the deadline →
        not started) and return True; False when it is to be trained."""
        if p.action == "skip":
            self.status[p.point.name] = "skipped"
            self.log(f"{self.tag(p)}: skipped ({p.detail})")
        elif p.action == "conflict":
            self.fail(p, "ConfigError", p.detail, status=p.detail)
        elif deadline is not None and time.perf_counter() >= deadline:
            self.status[p.point.name] = "not started"
            self.log(f"{self.tag(p)}: not started (time budget spent)")
        else:
            return False
        return True

    def fail(self, p: PlannedRun, kind: str, message: str, *, status: str | None = None) -> None:
        """A run that failed: one line ``FAILED: kind: message``."""
        line = f"{kind}: {message}" if kind else message
        self.status[p.point.name] = status if status is not None else line
        self.failed.append(p.point.name)
        self.log(f"{self.tag(p)}: FAILED: {line}")

    def finish(self, p: PlannedRun, res: Mapping[str, Any], *, resumed: bool, seconds: float, where: str = "") -> None:
        """A run that returned its results (completed, or stopped early: then it counts as failed)."""
        if not res.get("completed"):
            self.fail(p, "", f"stopped after epoch {res.get('epochs_done')}",
                      status=f"stopped after epoch {res.get('epochs_done')}")
            return
        self.status[p.point.name] = "ok"
        self.log(f"{self.tag(p)}: {'resumed, ' if resumed else ''}acc {res['final_test_acc']:.4f}, "
                 f"time {res['wall_clock_total']:.1f}s (selection {res['selection_time_total']:.1f}s), "
                 f"{seconds:.0f}s{where}; sweep {time.perf_counter() - self.t0:.0f}s")

    def outcome(self) -> "SweepOutcome":
        return SweepOutcome(self.planned, self.status, self.failed, time.perf_counter() - self.t0)


def resume_flag(p: PlannedRun) -> bool:
    """Whether the run goes through train's resume: a checkpoint, or a folder stopped before its first
    checkpoint (see :func:`plan_run`), which starts over at epoch 0 with its config.json (train locks the
    folder and checks that config's hash)."""
    return p.state in ("checkpoint", "restart")


def load_note() -> str:
    """``load average (1/5/15 min) a, b, c on N cores`` (or an empty string where unavailable)."""
    try:
        la = os.getloadavg()
    except OSError:
        return ""
    return f"load average (1/5/15 min) {la[0]:.2f}, {la[1]:.2f}, {la[2]:.2f} on {os.cpu_count()} cores"


__all__ = [
    "GRID_PRESETS", "GridSpec", "RunPoint", "PlannedRun", "SweepOutcome", "build_grid", "expand_grid", "parse_seeds",
    "parse_fractions", "parse_names", "plan_sweep", "run_sweep", "run_name", "read_grid_file", "describe",
    "known_selectors", "SweepTally", "resume_flag", "pruning_label",
]
