"""``coreaug select``: pick a (weighted) subset of a training set and write it to a file.

Examples::

    coreaug select --out sel.json                                    # digits, fresh CNN, 10% coreset
    coreaug select --dataset cifar10 --data-root data/cifar-10-batches-py --model resnet20 \\
        --checkpoint runs/c10/checkpoint.pt --fraction 0.1 --out sel.csv
    coreaug select --method maxloss --fraction 0.3 --out ml.pt
    coreaug select --method kcenter --fraction 0.1 --out kc.csv       # any selector of `coreaug info`

The proxies come from one eval-mode, no-grad pass with the test-time transform (no augmentation),
as in the official code; it computes what the chosen selector needs (probabilities, losses, gradient
proxies, embeddings, gradient norms). ``forgetting`` needs a training history and is only available
in ``coreaug train --selector forgetting``. The output holds training-set ``indices`` (ascending), their ``weights``
and ``labels``: ``.json`` (plus the settings), ``.csv`` (``index,label,weight`` rows) or ``.pt``
(a dict of tensors), written atomically. An existing file is never overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path
from typing import Any

import torch

from coreaug.commands._args import check_ranges
from coreaug.errors import ConfigError, OutputError
from coreaug.io import exclusive_create
from coreaug.api.selection import select_from_view
from coreaug.select import GREEDY_METHODS, PER_CLASS_MODES, SELECTION_METHODS, SIMILARITIES, get_selector, resolve_method

_FORMATS = (".json", ".csv", ".pt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("Examples::")[1].split("The proxies")[0] if __doc__ else None
    parser.add_argument("--out", required=True, help="output file: .json, .csv or .pt (never overwritten without --force)")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.add_argument("--dataset", default="digits", help="dataset name (default: digits, embedded)")
    parser.add_argument("--data-root", help="dataset folder (every dataset but digits)")
    parser.add_argument("--image-size", type=int, help="output side for ImageFolder datasets")
    parser.add_argument("--resize", type=int, help="resize side for ImageFolder datasets")
    parser.add_argument("--model", default="cnn", help="model name (default: cnn); see `coreaug info`")
    parser.add_argument("--checkpoint", help="checkpoint whose 'model' entry (or itself) is the state dict; "
                        "default: a freshly initialised model (seeded)")
    parser.add_argument("--method", default="coreset",
                        help=f"one of: {', '.join(SELECTION_METHODS)} (default: coreset; `coreaug info` says what each needs)")
    parser.add_argument("--fraction", type=float, default=0.1,
                        help="subset fraction in (0, 1] (default 0.1; coreaug train's presets set their own)")
    parser.add_argument("--budget", type=int, help="absolute subset size (overrides --fraction)")
    parser.add_argument("--per-class", default="proportional", choices=PER_CLASS_MODES,
                        help="per-class budgets (default: proportional, so the total is exactly B; coreaug "
                             "train and the API default to equal-ceil, the official code's ceil(B/C) per class)")
    parser.add_argument("--greedy", default="auto", choices=GREEDY_METHODS,
                        help="coreset optimiser (default: auto = the exact engine on the device: compiled incremental greedy on CPU, batched sweep on CUDA; streamed for huge classes)")
    parser.add_argument("--similarity", default="exp", choices=SIMILARITIES,
                        help="exp: exp(-dist/d) (official); maxdist: max dist - dist (CRAIG)")
    parser.add_argument("--proxy", default="bias", choices=("bias", "weight"), help="gradient proxy (default: bias)")
    parser.add_argument("--proj-dim", type=int, help="sketch the weight proxy to this many dims")
    parser.add_argument("--normalize-weights", action="store_true",
                        help="weights of weighted selectors (coreset, gradmatch, craig_pb) to mean 1 (official)")
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N (default: auto)")
    parser.add_argument("--seed", type=int, default=0, help="seed (fresh model init, random/stochastic selection)")
    parser.add_argument("--batch-size", type=int, default=None, help="proxy-pass batch size (default: 64 on CPU, 1024 on CUDA)")
    parser.add_argument("--num-workers", type=int, default=0, help="data-loader workers for the proxy pass")


def _load_model(args: argparse.Namespace, bundle: Any, device: torch.device) -> torch.nn.Module:
    from coreaug.models import build_model, load_weights

    torch.manual_seed(args.seed)
    model = build_model(args.model, bundle.num_classes, in_channels=bundle.in_channels,
                        image_size=args.image_size or bundle.image_size)
    if args.checkpoint:
        load_weights(model, args.checkpoint)
    return model.to(device)


def run(args: argparse.Namespace) -> int:
    from coreaug.augment import build_transform
    from coreaug.data import load_data
    from coreaug.device import resolve_device

    check_ranges(args, positive=("image_size", "resize", "budget", "proj_dim", "batch_size"),
                 non_negative=("num_workers",))
    out = Path(args.out)
    if out.suffix.lower() not in _FORMATS:
        raise ConfigError(f"--out must end in one of {', '.join(_FORMATS)}, got {out.name!r}")
    _check_out(out, force=args.force)
    if args.proj_dim is not None and args.proxy != "weight":
        raise ConfigError("--proj-dim sketches the weight proxy: pass it with --proxy weight")
    method = resolve_method(args.method)
    spec = get_selector(method)
    if "history" in spec.needs:
        raise ConfigError(f"selector {method!r} reads the training history; use `coreaug train --selector {method}`")
    device = resolve_device(args.device)
    bundle = load_data(args.dataset, args.data_root, image_size=args.image_size, resize=args.resize)
    size = args.image_size or bundle.image_size
    test_t = build_transform(image_size=size, mean=bundle.mean, std=bundle.std, weak="none", strong="none",
                             resize=bundle.extra.get("resize", args.resize))
    train = bundle.train.with_transform(test_t)
    labels = torch.as_tensor(train.targets, dtype=torch.long)
    n = labels.numel()
    budget: int | float = args.budget if args.budget is not None else args.fraction
    model = _load_model(args, bundle, device) if spec.needs else None
    sel = select_from_view(model, train, labels, selector=method, fraction=budget, per_class=args.per_class,
                           seed=args.seed, proxy=args.proxy, proj_dim=args.proj_dim, batch_size=args.batch_size,
                           num_workers=args.num_workers, options=_selector_options(method, args, device),
                           normalize_weights=args.normalize_weights, device=device)
    indices, weights, sel_labels = sel.indices, sel.weights, labels[sel.indices]
    meta = {
        "dataset": bundle.name, "n": n, "num_classes": bundle.num_classes, "method": sel.info.get("method", method),
        "model": None if not spec.needs else args.model, "checkpoint": args.checkpoint,
        "proxy": None if not spec.needs else args.proxy, "fraction": args.fraction, "budget": args.budget,
        "size": int(indices.numel()), "per_class": args.per_class, "budgets": sel.info.get("budgets"),
        "seed": args.seed, "objective": sel.info.get("objective"),
        "time_s": round(sel.seconds, 4),
    }
    with exclusive_create(out, enabled=not args.force):  # two selects into one new --out: the second fails
        _write(out, meta, indices, weights, sel_labels)
    print(f"selected {indices.numel()} of {n} {bundle.name} training points ({meta['method']}, "
          f"{args.per_class}) in {sel.seconds:.2f} s -> {out}")
    return 0


def _selector_options(method: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The flags each selector takes (``coreaug info`` lists them)."""
    if method == "coreset":
        return {"greedy": args.greedy, "similarity": args.similarity}
    if method == "graph_cut":
        return {"similarity": args.similarity, "device": device}
    if method == "craig_pb":
        return {"similarity": args.similarity, "greedy": args.greedy}
    if method in ("kcenter", "herding"):
        return {"device": device}
    return {}


def _check_out(out: Path, *, force: bool) -> None:
    """Refuse (before any work) an --out that exists unless --force, or that cannot be written."""
    from coreaug.io import check_output_dir

    if out.is_dir():
        raise OutputError(f"--out {out} is a folder; give a file name ending in {', '.join(_FORMATS)}")
    if out.exists() and not force:
        raise OutputError(f"--out {out} already exists; pass --force to overwrite it or choose another file")
    check_output_dir(out.parent)


def _write(out: Path, meta: dict[str, Any], indices: torch.Tensor, weights: torch.Tensor, labels: torch.Tensor) -> None:
    from coreaug.io import write_bytes_atomic, write_json_atomic, write_text_atomic

    suffix = out.suffix.lower()
    if suffix == ".json":
        write_json_atomic(out, {**meta, "indices": indices.tolist(), "weights": weights.tolist(),
                                "labels": labels.tolist()})
    elif suffix == ".csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["index", "label", "weight"])
        for i, y, g in zip(indices.tolist(), labels.tolist(), weights.tolist()):
            w.writerow([i, y, repr(float(g))])
        write_text_atomic(out, buf.getvalue())
    else:
        buf = io.BytesIO()
        torch.save({**meta, "indices": indices, "weights": weights, "labels": labels}, buf)
        write_bytes_atomic(out, buf.getvalue())
