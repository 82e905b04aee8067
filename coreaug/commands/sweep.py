"""``coreaug sweep``: run a grid of experiments (methods × selectors × fractions × seeds) and report it.

Examples::

    coreaug sweep --preset digits-quick --model mlp --methods subset-only,random+aug-subset,full-aug \\
        --selectors coreset,random,maxloss --fractions 0.1,0.3 --seeds 0-4 --out runs/sweep
    coreaug sweep --grid digits-selectors --out runs/selectors          # every selector, 5 seeds
    coreaug sweep --grid paper-cifar10 --data-root data/cifar-10-batches-py --out runs/paper --device cuda
    coreaug sweep --grid-file grid.yaml --out runs/g --dry-run            # list the runs, run nothing
    coreaug sweep --grid vs-pruning --model mlp --out runs/vs --jobs 2    # 2 cells at once on this machine
    coreaug sweep --grid vs-pruning --preset cifar10-resnet20 --data-root data/cifar-10-batches-py --out runs/vsc \
        --launcher submitit --slurm-partition gpu --slurm-time 12:00:00 --slurm-gpus 1   # one SLURM job a cell

Each run goes to OUT/<method>__<selector>__f<fraction>__s<seed>/ (full / full-aug: OUT/<method>__s<seed>/; with
pruning e.g. OUT/full-aug__infobatch-r0.3__s0/, a grid cell's other keys e.g. OUT/full-aug__lr-0.05__s0/);
completed runs are skipped, interrupted ones resumed from their checkpoint (or, stopped before it, started
over with their config.json); afterwards the report (accuracy mean ± std and ± 95% t confidence interval,
Welch test vs random, time, selection share, speed-up vs full-aug, the paper's headline numbers where they
exist) is written to OUT/report/. One sweep at a time writes into OUT (``OUT/.coreaug-sweep.lock``): a
second one exits 2 at once, naming the first one's PID, having run nothing. Exit code 2 when any run failed.

``--jobs N`` runs N cells at once as child processes (one GPU each where there are GPUs; otherwise each gets
max(1, cores // N) CPU threads unless the grid sets ``threads``); ``--launcher submitit`` sends each cell to
SLURM as a job (``pip install -e ".[submitit]"``), ``--launcher submitit-local`` runs those jobs on this
machine through submitit's local executor. Every launcher keeps the same skip / resume rules, the run-folder
lock keeps two jobs off one cell, and the report is written once, after all cells (see coreaug/launch.py).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any

from coreaug.commands._args import add_config_flags, config_flag_fields
from coreaug.errors import ConfigError
from coreaug.train.config import GROUPS

# TrainConfig fields set by the flag of the same name, fixed for every run of the grid (their metadata says so)
_OVERRIDE_FLAGS: tuple[str, ...] = config_flag_fields(sweep=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from coreaug.sweep import GRID_PRESETS

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "\n".join(textwrap.fill(par, 100, subsequent_indent="  ") for par in (
        f"grid presets: {', '.join(GRID_PRESETS)}",
        "  vs-pruning: augmented coresets vs dynamic data pruning, 5 seeds: full-aug; InfoBatch r=0.3 and r=0.5 and "
        "UCB pruning (keep 0.7), each thinning the full-aug epoch (InfoBatch with strong augmentation: every method "
        "sees the same strong augmentation); random subsets and augmented coresets (subset-only) at 10% and 30%. "
        "Dataset/model: the preset's (digits-quick) unless --preset/--dataset/--model say otherwise.",
        "precedence: --grid < --grid-file < flags. Grid file keys: preset, config, methods, selectors, fractions, "
        "seeds, overrides (a mapping of config keys, the same for every run), cells (a list of mappings of config "
        "keys, one run per cell and seed, e.g. {method: full-aug, pruning: infobatch, prune_ratio: 0.3}; a cell's "
        "keys win over overrides), slurm_partition, slurm_time, slurm_gpus.",
    ))
    g = parser.add_argument_group("the grid")
    g.add_argument("--grid", help="a grid preset: " + ", ".join(GRID_PRESETS))
    g.add_argument("--grid-file", help="YAML (or JSON) grid file")
    g.add_argument("--preset", help="training preset every run starts from (see `coreaug info`)")
    g.add_argument("--config", help="training config file (YAML/JSON) applied on top of the preset")
    g.add_argument("--methods", help="comma-separated methods, e.g. subset-only,random+aug-subset,full-aug")
    g.add_argument("--selectors", help="comma-separated selectors, or 'all'")
    g.add_argument("--fractions", help="comma-separated subset fractions in (0, 1], e.g. 0.1,0.3")
    g.add_argument("--seeds", help="seeds: a range 0-4, a list 0,1,2 or both 0-2,7")
    g.add_argument("--out", required=True, help="sweep folder: one sub-folder per run, plus report/")
    fixed = parser.add_argument_group("fixed overrides (same for every run)")
    g = parser.add_argument_group("execution")
    # one flag per TrainConfig field fixed for every run, generated from the field's metadata
    add_config_flags(parser, _OVERRIDE_FLAGS,
                     groups={**{name: fixed for name in GROUPS}, "execution": g})
    fixed.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="any other config key (value parsed as YAML), repeatable: --set aug_weight=gamma; "
                            "per-cell settings (e.g. pruning): grid cells (--grid vs-pruning)")
    g.add_argument("--jobs", type=int, metavar="N",
                   help="run N cells at once as child processes (one GPU each where there are GPUs); with "
                        "--launcher submitit: the most jobs in flight (default: all; submitit-local: one a core)")
    g.add_argument("--launcher", default="local",
                   help="local (default: this machine) | submitit (alias slurm: one SLURM job a cell, pip install -e "
                        "'.[submitit]') | submitit-local (submitit's local executor: jobs on this machine)")
    g.add_argument("--slurm-partition", help="SLURM partition of the jobs (--launcher submitit)")
    g.add_argument("--slurm-time", help="time limit of one job: minutes or [D-]HH:MM:SS (default 240 minutes; a job "
                                        "that hits it is requeued and resumes from its checkpoint)")
    g.add_argument("--slurm-gpus", type=int, help="GPUs per job (default 0)")
    g.add_argument("--dry-run", action="store_true", help="list the runs (run / skip / resume) and stop")
    g.add_argument("--no-report", action="store_true", help="do not write OUT/report/")
    g.add_argument("--verbose", action="store_true", help="show each run's progress bars and epoch lines")
    g.add_argument("--quiet", action="store_true", help="do not print the report table at the end")


def _parse_set(items: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad --set {item!r}: use KEY=VALUE, e.g. --set aug_weight=gamma")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"bad --set {item!r}: cannot parse the value") from None
    return out


def run(args: argparse.Namespace) -> int:
    from coreaug.runlock import acquire_sweep_lock
    from coreaug.sweep import LAUNCH_KEYS, build_grid, expand_grid, load_note, plan_sweep

    overrides = {field: getattr(args, field) for field in _OVERRIDE_FLAGS}
    overrides.update(_parse_set(args.set))
    spec = build_grid(args.grid, args.grid_file, preset=args.preset, config=args.config, methods=args.methods,
                      selectors=args.selectors, fractions=args.fractions, seeds=args.seeds, overrides=overrides,
                      **{k: getattr(args, k) for k in LAUNCH_KEYS})  # set by the flag of the same name
    out = Path(args.out)
    points = expand_grid(spec)  # bad grids (e.g. two points sharing a folder) fail before anything is created
    launcher = _launcher(args, spec, out)  # bad --jobs / --launcher too
    _check_out(out, report=not args.no_report)
    if args.dry_run:
        return _dry_run(spec, out, points)
    # One sweep writes into OUT at a time: its cells, their bookkeeping and OUT/report. The lock is taken
    # before the cells are looked at, so the plan sees no other sweep's half-written cells.
    with acquire_sweep_lock(out):
        planned = plan_sweep(spec, out, points)
        note = load_note()
        print(_headline(spec, out, planned) + (f"; {note}" if note else ""), flush=True)
        return _run_and_report(args, out, planned, launcher)


def _launcher(args: argparse.Namespace, spec, out: Path):
    """The launcher of the cells (None: this process, one after another); raises ConfigError on bad input."""
    from coreaug.launch import make_launcher

    threads_fixed = "threads" in spec.overrides or any("threads" in cell for cell in spec.cells)
    return make_launcher(args.launcher, jobs=args.jobs, out=out, threads_fixed=threads_fixed,
                         slurm_partition=spec.slurm_partition, slurm_time=spec.slurm_time, slurm_gpus=spec.slurm_gpus)


def _check_out(out: Path, *, report: bool) -> None:
    """Fail now, in one line, where the sweep could not write OUT or OUT/report (a file in the way, no
    permission, OUT or OUT/report a run folder of `coreaug train`), not after every run."""
    from coreaug.io import check_output_dir
    from coreaug.report import check_report_folder, is_run_folder

    check_output_dir(out, "sweep folder")
    if is_run_folder(out):
        raise ConfigError(f"sweep folder {out} is a run folder of `coreaug train`; choose another --out")
    if report:
        check_output_dir(out / "report", "report folder")
        check_report_folder(out / "report")


def _headline(spec, out: Path, planned: list) -> str:
    counts = {a: sum(1 for p in planned if p.action == a) for a in ("run", "skip", "resume", "conflict")}
    return (f"sweep{f' {spec.name}' if spec.name else ''}: {len(planned)} runs into {out} — {counts['run']} to run, "
            f"{counts['resume']} to resume, {counts['skip']} completed (skipped)"
            + (f", {counts['conflict']} in conflict" if counts["conflict"] else ""))


def _dry_run(spec, out: Path, points) -> int:
    from coreaug.sweep import describe, plan_sweep

    planned = plan_sweep(spec, out, points)
    print(_headline(spec, out, planned))
    for p in planned:
        print("  " + describe(p))
    datasets = {p.cfg.dataset for p in planned}
    if datasets - {"digits"} and not any(p.cfg.data_root for p in planned):
        print(f"note: {', '.join(sorted(datasets - {'digits'}))} needs --data-root to run")
    return 0


def _run_and_report(args: argparse.Namespace, out: Path, planned: list, launcher=None) -> int:
    """Run the plan (the sweep lock is held), write OUT/report from the completed runs, return the exit code."""
    from coreaug.sweep import run_sweep

    outcome = run_sweep(planned, quiet_runs=not args.verbose, log=lambda s: print(s, flush=True), launcher=launcher)
    done = len(outcome.completed_dirs)
    print(f"sweep finished in {outcome.seconds:.0f}s: {done} of {len(planned)} runs complete, "
          f"{len(outcome.failed)} failed", flush=True)
    if not args.no_report and done:
        from coreaug.report import write_stats_report

        paths = write_stats_report(outcome.completed_dirs, out / "report")
        if not args.quiet:
            print(paths["md"].read_text(encoding="utf-8"), end="")
        print(f"report: {', '.join(str(p) for p in paths.values())}")
    if outcome.failed:
        print(f"coreaug: error: {len(outcome.failed)} of {len(planned)} runs failed: {', '.join(outcome.failed)}",
              file=sys.stderr)
        return 2
    return 0
