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

from coreaug.runfolder import RunFolder
from coreaug.commands._args import int_list
from coreaug.errors import CheckpointError, ConfigError, RunFolderBusyError
from coreaug.train.config import (
    METHODS, PER_CLASS, SELECTORS, config_from_dict, read_config_file, resolve_config,
)
from coreaug.train.presets import PRESETS

# TrainConfig fields set by the flag of the same name (flag dest == field)
_FLAG_FIELDS: tuple[str, ...] = (
    "dataset", "model", "method", "selector", "fraction", "reselect_every", "epochs", "lr", "batch_size",
    "strong_aug", "weak_aug", "aug_policy", "seed", "device", "label_noise", "data_root", "weights", "proxy",
    "per_class", "aug_weight", "num_workers", "weight_decay", "momentum", "milestones", "threads",
    "eval_batch_size", "proxy_pool", "allow_nonfinite", "diagnostics_every", "diagnostics_probe",
    "diagnostics_params", "pruning", "prune_ratio", "prune_delta", "prune_keep", "prune_epsilon", "prune_c",
    "prune_window", "optimizer",
)


def _int_or_auto(text: str) -> int | str:
    """argparse type for flags taking a non-negative integer or ``auto``."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}") from None


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
    g = parser.add_argument_group("overrides")
    g.add_argument("--dataset")
    g.add_argument("--data-root", help="dataset folder (every dataset but digits)")
    g.add_argument("--model")
    g.add_argument("--weights", help="local torchvision state dict to fine-tune from (resnet18/50)")
    g.add_argument("--method", help=f"one of: {', '.join(METHODS)}")
    g.add_argument("--selector", help=f"subset selector: {', '.join(SELECTORS)}")
    g.add_argument("--fraction", type=float, help="subset fraction s in (0, 1]")
    g.add_argument("--reselect-every", type=int, help="R: re-select the subset every R epochs")
    g.add_argument("--proxy-pool", type=float, metavar="F",
                   help="proxy pass on a fresh stratified random pool of F·n points per reselection "
                        "(0 < F <= 1; default 1 = all n, the paper's protocol)")
    g.add_argument("--proxy", choices=("bias", "weight"), help="gradient proxy for the coreset")
    g.add_argument("--per-class", choices=PER_CLASS, help="per-class budget mode")
    g.add_argument("--aug-weight", choices=("one", "gamma"), help="loss weight of the appended strong copies")
    g.add_argument("--strong-aug", help="strong augmentation of the appended copies")
    g.add_argument("--weak-aug", help="weak (in-place) augmentation")
    g.add_argument("--aug-policy", help="AutoAugment policy: imagenet|cifar10|svhn")
    g.add_argument("--epochs", type=int)
    g.add_argument("--optimizer", choices=("sgd", "adamw"),
                   help="sgd (momentum, the paper's; default) or adamw (decoupled weight decay)")
    g.add_argument("--lr", type=float)
    g.add_argument("--momentum", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--milestones", type=int_list,
                   help="comma-separated MultiStepLR epochs, e.g. 100,150")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--label-noise", type=float, metavar="RATE", help="symmetric label-noise rate on training labels")
    g.add_argument("--seed", type=int)
    g = parser.add_argument_group("dynamic pruning of the full-data main set (methods full, full-aug, full+aug-subset)")
    g.add_argument("--pruning", help="none | infobatch (Qin et al. 2024) | ucb | epsilon-greedy (Raju et al. 2021)")
    g.add_argument("--prune-ratio", type=float, metavar="R",
                   help="InfoBatch: drop below-mean-loss examples with probability R in [0, 1) (default 0.5)")
    g.add_argument("--prune-delta", type=float, metavar="D",
                   help="InfoBatch: prune in the first D share of the epochs, then train on all (default 0.875)")
    g.add_argument("--prune-keep", type=float, metavar="K", help="UCB/epsilon-greedy: share kept per epoch (0.7)")
    g.add_argument("--prune-epsilon", type=float, metavar="E", help="epsilon-greedy: share of the kept set drawn "
                                                                      "at random (0.1)")
    g.add_argument("--prune-c", type=float, metavar="C", help="UCB/epsilon-greedy: score = mean + C*std (1.0)")
    g.add_argument("--prune-window", type=int, metavar="W", help="UCB/epsilon-greedy: recent losses kept (5)")
    g = parser.add_argument_group("execution")
    g.add_argument("--device", help="auto|cpu|cuda|cuda:N (default: the preset's, else auto)")
    g.add_argument("--amp", action="store_true", default=None, help="mixed precision on CUDA (ignored on CPU)")
    g.add_argument("--num-workers", type=_int_or_auto, metavar="N|auto",
                   help="DataLoader worker processes (default auto: 0 on CPU, min(8, cores) on CUDA)")
    g.add_argument("--threads", type=int, help="torch intra-op CPU threads (default: the cores this process may "
                                               "use; on a shared machine pass e.g. --threads 1)")
    g.add_argument("--eval-batch-size", type=_int_or_auto, metavar="N|auto",
                   help="inference batch of the proxy pass and evaluation (default auto: 64 on CPU, 1024 on CUDA)")
    g.add_argument("--allow-nonfinite", action="store_true", default=None,
                   help="keep training when the loss becomes NaN/inf (default: stop with an error)")
    g.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    g = parser.add_argument_group("spectral diagnostics (RUN_DIR/diagnostics.csv; see docs/diagnostics.md)")
    g.add_argument("--diagnostics-every", type=int, metavar="K",
                   help="Jacobian spectrum, shift and alignment error on a probe set at epoch 0 and every K epochs "
                        "(0 = off; default: the preset's, else 0)")
    g.add_argument("--diagnostics-probe", type=int, metavar="N", help="probe size (stratified training examples; default 256)")
    g.add_argument("--diagnostics-params", choices=("last", "all"),
                   help="Jacobian w.r.t. the classifier (last, default: cheap) or all parameters")
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
    from coreaug.train.loop import train

    overrides = {field: getattr(args, field) for field in _FLAG_FIELDS}
    overrides["amp"] = args.amp
    default_out = args.out is None
    if default_out:
        if args.resume or int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError("--out is required with --resume and under torchrun")
        args.out = str(_fresh_run_dir(args))
    out = Path(args.out)
    t0 = time.perf_counter()
    if args.tensorboard is not None:  # before the run folder is locked or written
        from coreaug.train.tensorboard import check_tensorboard_dir

        check_tensorboard_dir(args.tensorboard)
    if args.resume and args.preset is None and args.config is None:
        # resume from the folder's own resolved config; flags still override (and are hash-checked).
        # The run-folder lock is taken before config.json is read (rank 0 only under DDP).
        from coreaug.runlock import acquire_run_lock

        existed = out.is_dir()
        with acquire_run_lock(out) if _is_rank0() else contextlib.nullcontext():
            cfg = _saved_config(out, overrides, existed=existed)
            results = train(cfg, out, resume=True, quiet=args.quiet, stop_after_epoch=args.stop_after_epoch,
                            tensorboard=args.tensorboard)
    else:
        cfg = resolve_config(args.preset, args.config, overrides)
        for attempt in range(10):
            try:
                results = train(cfg, out, resume=args.resume, quiet=args.quiet, stop_after_epoch=args.stop_after_epoch,
                                tensorboard=args.tensorboard)
                break
            except RunFolderBusyError:
                if not default_out or attempt == 9:
                    raise
                out = _fresh_run_dir(args)  # a run started at the same moment took this default folder
    if results.get("world_size", 1) > 1 and not _is_rank0():
        return 0
    status = "done" if results["completed"] else f"stopped after epoch {results['epochs_done']}"
    print(
        f"{status}: {cfg.method}"
        + (f" ({cfg.selector}, {cfg.fraction:g})" if cfg.uses_subset else "")
        + f" final test acc {results['final_test_acc']:.4f}, best {results['best_test_acc']:.4f}, "
        f"train+selection {results['wall_clock_total']:.1f}s (selection {100 * results.get('selection_share', 0.0):.1f}%), "
        f"total {time.perf_counter() - t0:.1f}s -> {out}"
    )
    if results.get("selection_pays") is False:  # coreaug.train.cost.selection_verdict
        print(f"note: selection did not pay: it took {results['selection_time_total']:.2f}s but saved only "
              f"~{results['selection_saved_s']:.2f}s of training against the same epochs of "
              f"{results['reference']} (estimated at this run's time per example)")
    return 0


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
