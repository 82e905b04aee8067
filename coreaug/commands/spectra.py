"""``coreaug spectra``: Jacobian spectrum of a model on a data subset, clean vs perturbed.

For n examples x (pixels in [0, 1]) and each perturbation x̃ = x + δ — random or worst-case in an
ε-ball (on the [0, 1] pixel scale, before normalisation) and/or a real strong augmentation
expressed as δ = aug(x) − x — it computes the joint Gram of the stacked Jacobian [J(x); J(x̃)]
blockwise (``spectra.gram_matrix``; J is never materialised) and reports, from it alone
(``spectra.shift_report_from_gram``): σ(J), σ(J̃), σ([J; J̃]) (augmentation *appends* copies),
the relative change of each σ_i (small vs large), principal angles between the top-r left
singular subspaces, and the Weyl / Davis–Kahan / stacked-Jacobian checks.

Writes ``OUT/spectra.json`` (summaries; strict JSON, so a non-finite number such as the condition
number of a rank-deficient Jacobian is written as ``null``) and ``OUT/spectra.npz`` (all spectra),
atomically.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from coreaug.commands._args import check_ranges
from coreaug.device import resolve_device
from coreaug.data.base import stratified_indices
from coreaug.errors import ConfigError
from coreaug.io import atomic_path, check_output_dir, write_json_atomic

PERTURBATIONS = ("random", "worst", "none")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="digits", help="dataset name (default: digits, embedded)")
    parser.add_argument("--data-root", default=None, help="dataset folder (not needed for digits)")
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--model", default="mlp", help="model name (see `coreaug info`; default: mlp)")
    parser.add_argument("--checkpoint", default=None,
                        help="trained weights: a `coreaug train` checkpoint.pt (key 'model') or a plain state dict")
    parser.add_argument("-n", "--num-examples", type=int, default=200, help="examples (stratified random subset)")
    parser.add_argument("--params", default="all",
                        help="parameters to differentiate: all | last | comma-separated names (e.g. fc.weight,fc)")
    parser.add_argument("--outputs", choices=("true-class", "all"), default="true-class",
                        help="one row per example (true-class logit) or all logits (n*k rows)")
    parser.add_argument("--perturb", default="random",
                        help="comma-separated eps-ball perturbations: random, worst, none (default: random)")
    parser.add_argument("--eps", type=float, default=0.5, help="ball radius on the [0, 1] pixel scale (default 0.5)")
    parser.add_argument("--norm", choices=("l2", "linf"), default="l2")
    parser.add_argument("--pgd-steps", type=int, default=10, help="steps of projected gradient ascent for 'worst'")
    parser.add_argument("--objective", choices=("loss", "logit_grad_norm"), default="loss",
                        help="worst-case objective: cross-entropy or the squared true-class-logit gradient norm")
    parser.add_argument("--augment", default="",
                        help="comma-separated strong augmentations (coreaug.augment names, e.g. autoaugment,augmix)")
    parser.add_argument("--rank", type=int, default=None,
                        help="r: dimension of the top singular subspaces compared, in [1, rows-1] (default: 10, "
                             "or rows-1 when fewer)")
    parser.add_argument("--float32", action="store_true", help="compute in float32 (default float64)")
    parser.add_argument("--block-size", type=int, default=None, help="examples per Jacobian block of the Gram")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--out", default="runs/spectra", help="output folder (spectra.json, spectra.npz)")
    parser.add_argument("--no-progress", action="store_true", help="disable the progress bar")


def _load_examples(bundle, split: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A class-stratified random subset of n examples: (pixels in [0, 1] float, labels, indices)."""
    ds = getattr(bundle, split)
    total = len(ds)
    if not (1 <= n <= total):
        raise ConfigError(f"--num-examples must be in [1, {total}] for {bundle.name} {split}, got {n}")
    raw = ds.with_transform(None)
    targets = torch.as_tensor(ds.targets)
    index = stratified_indices(targets, n, seed=seed)
    imgs = torch.stack([raw[int(j)][0] for j in index])
    x = imgs.float() / 255.0 if imgs.dtype == torch.uint8 else imgs.float()
    return x, targets[index], index


def _param_spec(text: str):
    text = text.strip()
    if text in ("all", "last"):
        return text
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise ConfigError("--params is empty; use all, last or comma-separated names")
    return names


def _conditions(args: argparse.Namespace) -> list[tuple[str, dict]]:
    """The perturbations and augmentations to compare, checked (one-line ConfigError on bad input)."""
    perturbs = [p.strip() for p in args.perturb.split(",") if p.strip()]
    for p in perturbs:
        if p not in PERTURBATIONS:
            raise ConfigError(f"unknown perturbation {p!r}; choose from {', '.join(PERTURBATIONS)}")
    perturbs = [p for p in perturbs if p != "none"]
    augments = [a.strip() for a in args.augment.split(",") if a.strip()]
    if not perturbs and not augments:
        raise ConfigError("nothing to compare: pass --perturb random|worst and/or --augment NAME")
    if perturbs and not (math.isfinite(args.eps) and args.eps > 0):
        raise ConfigError(f"--eps must be a positive number, got {args.eps}")
    if args.pgd_steps < 1:
        raise ConfigError(f"--pgd-steps must be >= 1, got {args.pgd_steps}")
    return ([(f"{p}-{args.norm}-eps{args.eps:g}", {"kind": p}) for p in perturbs]
            + [(f"augment-{a}", {"kind": "augment", "name": a}) for a in augments])


def _check_rank(args: argparse.Namespace, num_classes: int) -> int:
    """Top-r subspaces of the Jacobian's rows are compared for r < rows (r = rows is the whole space)."""
    rows = args.num_examples * (1 if args.outputs == "true-class" else num_classes)
    if args.rank is None:
        return max(1, min(10, rows - 1))
    if not 1 <= args.rank <= rows - 1:
        raise ConfigError(f"--rank must be in [1, {rows - 1}] (one less than the {rows} Jacobian rows), got {args.rank}"
                          if rows > 1 else "--rank needs at least 2 Jacobian rows: pass -n 2 or more")
    return args.rank


class _OnPixels(torch.nn.Module):
    """The model applied to [0, 1] pixels (normalisation folded in), for worst-case ascent."""

    def __init__(self, inner: torch.nn.Module, normalise):
        super().__init__()
        self.inner, self._normalise = inner, normalise

    def forward(self, z):
        return self.inner(self._normalise(z))


def _perturbed(spec: dict, x_pix, y, model, normalise, params, bundle, args) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x + δ, δ)`` of one condition on [0, 1] pixels (seeded per kind)."""
    import spectra

    if spec["kind"] == "random":
        delta = spectra.random_perturbation(x_pix, args.eps, args.norm, seed=args.seed + 1)
        return x_pix + delta, delta
    if spec["kind"] == "worst":
        delta = spectra.worst_case_perturbation(
            _OnPixels(model, normalise), x_pix, y, args.eps, args.norm, objective=args.objective,
            steps=args.pgd_steps, params=[f"inner.{n}" for n in spectra.select_parameters(model, params)],
            seed=args.seed + 2,
        )
        return x_pix + delta, delta
    from coreaug.augment import pixel_augmentation

    aug = pixel_augmentation(spec["name"], bundle.image_size)
    res = spectra.augmentation_deltas(x_pix, lambda t: aug(t.unsqueeze(0))[0], seed=args.seed + 3)
    return res.x_aug, res.delta


def _clean_summary(s: torch.Tensor, rows: int) -> dict:
    import spectra

    nz = int(spectra.numerical_rank(s))
    return {
        "rows": rows, "numerical_rank": nz, "sigma_max": float(s[0]), "sigma_min": float(s[-1]),
        "condition_number_rank_r": spectra.condition_number(s, rank=max(1, nz)),
        "effective_rank": spectra.effective_rank(s), "stable_rank": spectra.stable_rank(s),
    }


def _condition_result(spec: dict, rep: dict, norms: dict, r: int) -> dict:
    import spectra

    return {
        "perturbation": spec,
        "delta_l2_mean": float(norms["l2"].mean()), "delta_l2_max": float(norms["l2"].max()),
        "delta_linf_mean": float(norms["linf"].mean()), "delta_linf_max": float(norms["linf"].max()),
        "in_place": rep["summary"],
        "appended": rep["summary_stacked"],
        "effective_rank_perturbed": spectra.effective_rank(rep["sigma_perturbed"]),
        "effective_rank_stacked": spectra.effective_rank(rep["sigma_stacked"]),
        "principal_angles_top_r_deg": [math.degrees(float(a)) for a in rep["principal_angles"]],
        "rank_r": r,
        "checks": {k: c.to_dict() for k, c in rep["checks"].items()},
    }


def _print_summary(results: dict[str, dict], out: Path) -> None:
    for name, res in results.items():
        a, b = res["in_place"], res["appended"]
        print(f"{name}: ||delta||_2 mean {res['delta_l2_mean']:.3f}; in place: rel. change sigma_max "
              f"{a['sigma_max_rel_change']:+.3f}, sigma_min {a['sigma_min_rel_change']:+.3f}; appended: "
              f"sigma_max x{1 + b['sigma_max_rel_change']:.3f}, sigma_min x{1 + b['sigma_min_rel_change']:.3f}; "
              f"top-{res['rank_r']} angle max {max(res['principal_angles_top_r_deg']):.1f} deg; "
              f"bounds hold: {all(c['holds'] for c in res['checks'].values())}")
    print(f"wrote {out / 'spectra.json'} and {out / 'spectra.npz'}")


@dataclass
class _Inputs:
    """What every condition is measured on: the model, its examples (pixels in [0, 1]) and settings."""

    bundle: Any
    model: nn.Module
    params: Any
    x_pix: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    dtype: torch.dtype
    device: torch.device

    def normalise(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.mean) / self.std


def _inputs(args: argparse.Namespace, device: torch.device) -> _Inputs:
    """Load the data and the model (with ``--checkpoint``), and draw the examples."""
    from coreaug.data import load_data
    from coreaug.models import build_model, load_weights

    torch.manual_seed(args.seed)
    bundle = load_data(args.dataset, args.data_root)
    model = build_model(args.model, bundle.num_classes, in_channels=bundle.in_channels, image_size=bundle.image_size)
    if args.checkpoint:
        load_weights(model, args.checkpoint)
    model = model.to(device).eval()
    params = _param_spec(args.params)
    x_pix, y, index = _load_examples(bundle, args.split, args.num_examples, args.seed)
    args.rank = _check_rank(args, bundle.num_classes)
    return _Inputs(bundle, model, params, x_pix.to(device), y.to(device), index,
                   torch.tensor(bundle.mean, device=device).view(1, -1, 1, 1),
                   torch.tensor(bundle.std, device=device).view(1, -1, 1, 1),
                   torch.float32 if args.float32 else torch.float64, device)


def _measure(args: argparse.Namespace, conditions, inp: _Inputs) -> tuple[dict, dict, dict | None]:
    """Every condition's shift report: (results by condition, arrays for the NPZ, the clean summary)."""
    import spectra
    from tqdm.auto import tqdm

    targets = inp.y if args.outputs == "true-class" else None
    bar = tqdm(total=len(conditions), desc="spectra", unit="cond", disable=args.no_progress)
    results: dict[str, dict] = {}
    arrays: dict[str, np.ndarray] = {}
    clean_summary = None
    for name, spec in conditions:
        x_new, delta = _perturbed(spec, inp.x_pix, inp.y, inp.model, inp.normalise, inp.params, inp.bundle, args)
        norms = spectra.perturbation_norms(delta)
        # joint Gram of [J(x); J(x̃)] — blockwise, J never materialised
        xx = inp.normalise(torch.cat([inp.x_pix, x_new]))
        tt = None if targets is None else torch.cat([targets, targets])
        G = spectra.gram_matrix(inp.model, xx, params=inp.params, targets=tt, dtype=inp.dtype,
                                block_size=args.block_size)
        N = G.shape[0] // 2
        r = max(1, min(args.rank, N - 1))
        rep = spectra.shift_report_from_gram(G, r)
        if clean_summary is None:
            clean_summary = _clean_summary(rep["sigma_clean"], N)
            arrays["sigma_clean"] = rep["sigma_clean"].cpu().numpy()
        results[name] = _condition_result(spec, rep, norms, r)
        key = name.replace("-", "_").replace(".", "p")
        arrays[f"{key}__sigma_perturbed"] = rep["sigma_perturbed"].cpu().numpy()
        arrays[f"{key}__sigma_stacked"] = rep["sigma_stacked"].cpu().numpy()
        arrays[f"{key}__relative_shift"] = rep["relative_shift"].cpu().numpy()
        arrays[f"{key}__delta_l2"] = norms["l2"].cpu().numpy()
        bar.set_postfix_str(name)
        bar.update(1)
    bar.close()
    return results, arrays, clean_summary


def run(args: argparse.Namespace) -> int:
    import spectra

    t_start = time.time()
    check_ranges(args, positive=("rank", "pgd_steps", "block_size"))
    device = resolve_device(args.device)
    conditions = _conditions(args)
    check_output_dir(args.out)
    inp = _inputs(args, device)
    results, arrays, clean_summary = _measure(args, conditions, inp)
    out = Path(args.out)
    report = {
        "command": "spectra",
        "dataset": inp.bundle.name, "split": args.split, "model": args.model, "checkpoint": args.checkpoint,
        "num_examples": int(inp.x_pix.shape[0]), "outputs": args.outputs, "params": args.params,
        "num_params": spectra.parameter_layout(inp.model, inp.params)[-1].stop,
        "dtype": str(inp.dtype).replace("torch.", ""), "device": str(device), "seed": args.seed,
        "eps": args.eps, "norm": args.norm, "eps_scale": "pixels in [0, 1], before normalisation",
        "example_indices": inp.index.tolist(),
        "clean": clean_summary,
        "conditions": results,
        "seconds": round(time.time() - t_start, 2),
    }
    write_json_atomic(out / "spectra.json", report)  # strict JSON: tensors as lists, NaN/±inf as null
    with atomic_path(out / "spectra.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    _print_summary(results, out)
    return 0
