"""``coreaug train``: one experiment from a preset, a config file and flags.

Examples::

    coreaug train --preset digits-quick --out runs/quick
    coreaug train --preset digits-quick --method random+aug-subset --selector maxloss --fraction 0.1 --out runs/ml10
    coreaug train --preset cifar10-resnet20 --data-root data/cifar-10-batches-py --out runs/c10 --amp
    coreaug train --out runs/quick --resume                  # continue an interrupted run (config from the folder)
    torchrun --nproc_per_node 4 -m coreaug train --preset imagenet-resnet50 --data-root /data/imagenet --out runs/in
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path

from coreaug.commands._args import add_config_flags, config_flag_fields
from coreaug.errors import CheckpointError, ConfigError, RunFolderBusyError
from coreaug.runfolder import RunFolder
from coreaug.train.config import METHODS, SELECTORS, config_from_dict, read_config_file, resolve_config
from coreaug.train.presets import PRESETS

# TrainConfig fields set by the flag of the same name (generated from the fields' metadata)
_FLAG_FIELDS: tuple[str, ...] = config_flag_fields()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        f"presets: {', '.join(PRESETS)}\nmethods: {', '.join(METHODS)}\nselectors: {', '.join(SELECTORS)}\n"
        "precedence: preset < --config file < flags. --resume re-reads config.json from --out."
    )
    g = parser.add_argument_group("what to run")
    g.add_argument("--preset", help="start from a preset (see `coreaug info`)")
    g.add_argument("--config", help="YAML or JSON file of config keys (may name a 'preset')")
    g.add_argument("--out", help="run folder (must be empty or absent unless --resume); "
                                  "default: a new folder runs/<preset-or-dataset>-<method>[-N]")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (from epoch 0 with its config.json when "
                        "it stopped before the first checkpoint)")
    g.add_argument("--print-config", action="store_true",
                   help="print the resolved configuration as a YAML config file (in its group sections) and exit; "
                        "nothing is trained or written")
    # one flag per TrainConfig field, generated from the field's metadata (coreaug/train/config.py)
    groups = add_config_flags(parser, _FLAG_FIELDS)
    g = groups["execution"]
    g.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    g = groups["diagnostics"]
    g.add_argument("--tensorboard", metavar="DIR",
                   help='stream per-epoch metrics and diagnostics to TensorBoard in DIR (pip install -e ".[tb]")')
    g.add_argument("--stop-after-epoch", type=int, help=argparse.SUPPRESS)  # simulate an interruption (tests)


def _fresh_run_dir(args: argparse.Namespace, root: Path = Path("runs")) -> Path:
    """``runs/<preset-or-dataset>-<method>``, with ``-2``, ``-3``… appended so no earlier run is touched."""
    name = "-".join(str(v) for v in (args.preset or args.dataset or "run", args.method) if v)
    candidate, k = root / name, 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        k += 1
        candidate = root / f"{name}-{k}"
    return candidate


def run(args: argparse.Namespace) -> int:
    overrides = {field: getattr(args, field) for field in _FLAG_FIELDS}
    if args.print_config:
        print(config_yaml(resolve_config(args.preset, args.config, overrides)), end="")
        return 0
    default_out = args.out is None
    if default_out:
        if args.resume or int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError("--out is required with --resume and under torchrun")
        args.out = str(_fresh_run_dir(args))
    t0 = time.perf_counter()
    if args.tensorboard is not None:  # before the run folder is locked or written
        from coreaug.train.tensorboard import check_tensorboard_dir

        check_tensorboard_dir(args.tensorboard)
    cfg, results, out = _train(args, Path(args.out), overrides, default_out=default_out)
    if results.get("world_size", 1) > 1 and not _is_rank0():
        return 0
    _print_outcome(cfg, results, out, time.perf_counter() - t0)
    return 0


def config_yaml(cfg) -> str:
    """``cfg`` as a YAML config file in its group sections, which ``--config`` reads back to the same config."""
    import yaml

    return yaml.safe_dump(cfg.to_sections(), sort_keys=False, default_flow_style=False)


def _train(args: argparse.Namespace, out: Path, overrides: dict, *, default_out: bool):
    """Resolve the configuration and train it into ``out``; returns (config, results, the run folder used)."""
    from coreaug.train.loop import train

    run_kw = dict(quiet=args.quiet, stop_after_epoch=args.stop_after_epoch, tensorboard=args.tensorboard)
    if args.resume and args.preset is None and args.config is None:
        # resume from the folder's own resolved config; flags still override (and are hash-checked).
        # The run-folder lock is taken before config.json is read (rank 0 only under DDP).
        from coreaug.runlock import acquire_run_lock

        existed = out.is_dir()
        with acquire_run_lock(out) if _is_rank0() else contextlib.nullcontext():
            cfg = _saved_config(out, overrides, existed=existed)
            return cfg, train(cfg, out, resume=True, **run_kw), out
    cfg = resolve_config(args.preset, args.config, overrides)
    for attempt in range(10):
        try:
            return cfg, train(cfg, out, resume=args.resume, **run_kw), out
        except RunFolderBusyError:
            if not default_out or attempt == 9:
                raise
            out = _fresh_run_dir(args)  # a run started at the same moment took this default folder
    raise AssertionError("unreachable")  # pragma: no cover


def _print_outcome(cfg, results: dict, out: Path, seconds: float) -> None:
    """The run's final line (and a note when selection cost more than it saved)."""
    status = "done" if results["completed"] else f"stopped after epoch {results['epochs_done']}"
    print(
        f"{status}: {cfg.method}"
        + (f" ({cfg.selector}, {cfg.fraction:g})" if cfg.uses_subset else "")
        + f" final test acc {results['final_test_acc']:.4f}, best {results['best_test_acc']:.4f}, "
        f"train+selection {results['wall_clock_total']:.1f}s (selection {100 * results.get('selection_share', 0.0):.1f}%), "
        f"total {seconds:.1f}s -> {out}"
    )
    if results.get("selection_pays") is False:  # coreaug.train.cost.selection_verdict
        print(f"note: selection did not pay: it took {results['selection_time_total']:.2f}s but saved only "
              f"~{results['selection_saved_s']:.2f}s of training against the same epochs of "
              f"{results['reference']} (estimated at this run's time per example)")


def _saved_config(out: Path, overrides: dict, *, existed: bool):
    """The configuration saved in ``out/config.json``, with the set flags applied on top."""
    saved = RunFolder(out).config_path
    if not existed:
        raise CheckpointError(f"cannot resume: run folder {out} does not exist")
    if not saved.is_file():
        raise CheckpointError(f"cannot resume: no config.json in {out} (the run stopped before writing it); "
                              "rerun the original command with --resume")
    try:
        base = read_config_file(saved)
    except ConfigError as exc:
        raise CheckpointError(f"cannot resume from {out}: {exc}") from None
    base.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_dict(base)


def _is_rank0() -> bool:
    import os

    return int(os.environ.get("RANK", "0")) == 0
