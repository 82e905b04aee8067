"""Bounded additive input perturbations x̃ = x + δ, the paper's model of augmentation.

* :func:`random_perturbation` — δ_i uniform in (or on the sphere of) the per-example ε-ball
  {δ : ||δ_i||_q ≤ ε}, q ∈ {2, ∞}, reproducible from a seed / ``torch.Generator``.
* :func:`worst_case_perturbation` — projected gradient ascent (PGD) inside the same ball on a
  stated objective (per-example cross-entropy, or the squared norm of the per-example
  parameter-gradient of the true-class logit, i.e. the diagonal of the Gram J Jᵀ).
* :func:`augmentation_deltas` — any augmentation callable (e.g. a ``coreaug.augment``
  transform, passed in by the caller) expressed as δ = aug(x) − x with its measured norms.

Norms are per example, over all of an example's entries (flattened).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spectra.errors import SpectraError
from spectra.jacobian import ParamSpec, _Functional, check_batch, check_finite, eval_mode

__all__ = [
    "NORMS",
    "perturbation_norms",
    "project",
    "random_perturbation",
    "worst_case_perturbation",
    "AugmentationDeltas",
    "augmentation_deltas",
    "OBJECTIVES",
]

NORMS = ("l2", "linf")
OBJECTIVES = ("loss", "logit_grad_norm")


def _check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise SpectraError(f"unknown norm {norm!r}; use one of {NORMS}")
    return norm


def _check_eps(eps: float) -> float:
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise SpectraError(f"eps must be a positive number, got {eps!r}") from None
    if not (eps > 0) or eps == float("inf"):
        raise SpectraError(f"eps must be a positive finite number, got {eps!r}")
    return eps


def perturbation_norms(delta: Tensor) -> dict[str, Tensor]:
    """Per-example ``{"l2": ||δ_i||_2, "linf": ||δ_i||_∞}`` (each of shape (n,))."""
    delta = check_batch(delta, "delta")
    flat = delta.reshape(delta.shape[0], -1)
    return {"l2": flat.norm(dim=1), "linf": flat.abs().amax(dim=1)}


def project(delta: Tensor, eps: float, norm: str = "l2") -> Tensor:
    """Euclidean projection of each δ_i onto {||δ_i||_q ≤ ε}: rescale (L2) or clip (L∞)."""
    eps, norm = _check_eps(eps), _check_norm(norm)
    delta = check_batch(delta, "delta")
    if norm == "linf":
        return delta.clamp(-eps, eps)
    flat = delta.reshape(delta.shape[0], -1)
    scale = (eps / flat.norm(dim=1).clamp_min(1e-30)).clamp(max=1.0)
    return (flat * scale.unsqueeze(1)).reshape_as(delta)


def _generator(seed: int | None, generator: torch.Generator | None) -> torch.Generator:
    if generator is not None:
        if seed is not None:
            raise SpectraError("pass either seed or generator, not both")
        if generator.device.type != "cpu":
            raise SpectraError("generator must be a CPU torch.Generator (samples are drawn on CPU, then moved)")
        return generator
    g = torch.Generator()
    if seed is not None:
        g.manual_seed(int(seed))
    else:
        g.seed()
    return g


def random_perturbation(
    x: Tensor,
    eps: float,
    norm: str = "l2",
    *,
    on_boundary: bool = False,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random δ with the shape of ``x``, each δ_i in the ε-ball of the given norm.

    L2: direction uniform on the sphere (normalised Gaussian), radius ε·U^{1/d} (uniform in the
    ball) or exactly ε with ``on_boundary``. L∞: uniform in [−ε, ε]^d, or a uniformly random
    vertex ε·{±1}^d with ``on_boundary``. Samples are drawn on the CPU from ``generator`` (or a
    fresh one seeded by ``seed``) so results are identical on CPU and CUDA; δ is returned on
    x's device and dtype.
    """
    x = check_batch(x)
    eps, norm = _check_eps(eps), _check_norm(norm)
    g = _generator(seed, generator)
    n = x.shape[0]
    d = x[0].numel()
    if norm == "l2":
        z = torch.randn(n, d, generator=g, dtype=torch.float64)
        z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-300)
        if on_boundary:
            radius = torch.full((n, 1), eps, dtype=torch.float64)
        else:
            radius = eps * torch.rand(n, 1, generator=g, dtype=torch.float64) ** (1.0 / d)
        delta = z * radius
    else:
        if on_boundary:
            delta = eps * (2.0 * torch.randint(0, 2, (n, d), generator=g, dtype=torch.int64) - 1).double()
        else:
            delta = eps * (2.0 * torch.rand(n, d, generator=g, dtype=torch.float64) - 1.0)
    return delta.reshape(x.shape).to(device=x.device, dtype=x.dtype)


def _objective_fn(
    model: nn.Module, objective: str | Callable[[nn.Module, Tensor, Tensor], Tensor], params: ParamSpec
) -> Callable[[Tensor, Tensor], Tensor]:
    """Return obj(x_adv, y) → (n,) per-example values to be maximised."""
    if callable(objective):
        def custom(xa: Tensor, y: Tensor) -> Tensor:
            val = objective(model, xa, y)
            if not isinstance(val, Tensor) or val.shape not in ((xa.shape[0],), ()):
                raise SpectraError("a custom objective must return a scalar or an (n,) tensor")
            return val if val.ndim == 1 else val.expand(xa.shape[0])
        return custom
    if objective == "loss":
        # ℓ_i = CE(f(x_i + δ_i), y_i)
        return lambda xa, y: F.cross_entropy(model(xa), y, reduction="none")
    if objective == "logit_grad_norm":
        # ||∂ f_{y_i}(θ; x_i + δ_i) / ∂θ_S||²  (= G_ii of the true-class-logit Gram / NTK)
        from torch.func import grad, vmap

        fn = _Functional(model, params, None)

        def logit(theta: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
            return fn.forward(theta, xi.unsqueeze(0))[0].gather(0, yi.reshape(1)).squeeze(0)

        per_ex = vmap(grad(logit), in_dims=(None, 0, 0))

        def gnorm(xa: Tensor, y: Tensor) -> Tensor:
            g = per_ex(fn.primals, xa, y)
            return sum(v.reshape(v.shape[0], -1).pow(2).sum(1) for v in g.values())

        return gnorm
    raise SpectraError(f"unknown objective {objective!r}; use one of {OBJECTIVES} or a callable")


def worst_case_perturbation(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    norm: str = "l2",
    *,
    objective: str | Callable[[nn.Module, Tensor, Tensor], Tensor] = "loss",
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    params: ParamSpec = "all",
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Worst-case δ in the ε-ball by projected gradient ascent (PGD) on a per-example objective.

    Maximises Σ_i obj_i(x_i + δ_i) subject to ||δ_i||_q ≤ ε; the examples decouple because the
    model runs in eval mode, so this is per-example ascent. Objectives:

    * ``"loss"``: cross-entropy CE(f(x_i + δ_i), y_i) (the usual adversarial objective);
    * ``"logit_grad_norm"``: ||∂f_{y_i}(θ; x_i + δ_i)/∂θ_S||², the squared norm of the
      true-class-logit row of J (the Gram diagonal) — it pushes Jacobian rows to grow;
    * a callable ``obj(model, x_adv, y) -> (n,)`` tensor.

    Step: δ ← Π_ball(δ + α·g/||g||_2) for L2, δ ← Π_ball(δ + α·sign(g)) for L∞, with
    α = ``step_size`` (default 2.5·ε/steps). Starts from a random point of the ball
    (``random_start``) or 0. Returns the final δ (no gradient attached).
    """
    x = check_batch(x)
    eps, norm = _check_eps(eps), _check_norm(norm)
    if not isinstance(model, nn.Module):
        raise SpectraError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(steps, int) or steps < 1:
        raise SpectraError(f"steps must be a positive integer, got {steps!r}")
    y = torch.as_tensor(y)
    if y.shape != (x.shape[0],) or y.dtype.is_floating_point:
        raise SpectraError(f"y must be an integer tensor of shape ({x.shape[0]},), got {tuple(y.shape)} {y.dtype}")
    alpha = 2.5 * eps / steps if step_size is None else float(step_size)
    if not alpha > 0:
        raise SpectraError(f"step_size must be positive, got {step_size!r}")
    y = y.to(x.device).long()
    delta = random_perturbation(x, eps, norm, seed=seed, generator=generator) if random_start else torch.zeros_like(x)
    with eval_mode(model), torch.enable_grad():
        obj = _objective_fn(model, objective, params)
        for _ in range(steps):
            d = delta.detach().requires_grad_(True)
            val = obj(x + d, y).sum()
            (g,) = torch.autograd.grad(val, d)
            if norm == "linf":
                step = g.sign()
            else:
                gf = g.reshape(g.shape[0], -1)
                step = (gf / gf.norm(dim=1, keepdim=True).clamp_min(1e-30)).reshape_as(g)
            delta = project(delta.detach() + alpha * step, eps, norm)
    return delta.detach()


@dataclass
class AugmentationDeltas:
    """Result of :func:`augmentation_deltas`: x̃ = aug(x), δ = x̃ − x and per-example norms."""

    x_aug: Tensor
    delta: Tensor
    l2: Tensor
    linf: Tensor


def augmentation_deltas(
    x: Tensor,
    aug_fn: Callable[[Tensor], Tensor],
    *,
    per_example: bool = True,
    seed: int | None = None,
) -> AugmentationDeltas:
    """Express an augmentation as an additive perturbation: δ_i = aug(x_i) − x_i, with ||δ_i||.

    ``aug_fn`` is any callable returning a tensor of its input's shape (e.g. a torchvision v2
    transform; the caller builds it — this module does not import ``coreaug``). It must work in
    the space ``x`` lives in (e.g. uint8 images → pass uint8 ``x`` and compare there, or
    normalised floats). With ``per_example`` it is called once per example (independent random
    parameters); otherwise once on the batch. ``seed`` makes the global-RNG draws of the
    transform reproducible without disturbing the caller's RNG state (``torch.random.fork_rng``).
    δ and the norms are computed in float (x's dtype if floating, else float32).
    """
    if not isinstance(x, Tensor):
        raise SpectraError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 1 or x.shape[0] == 0:
        raise SpectraError(f"x must have a non-empty leading batch dimension, got shape {tuple(x.shape)}")
    if x.is_floating_point():
        check_finite(x, "x")
    if not callable(aug_fn):
        raise SpectraError("aug_fn must be callable")
    devices = [x.device] if x.device.type == "cuda" else []
    ctx = torch.random.fork_rng(devices=devices) if seed is not None else contextlib.nullcontext()
    with ctx:
        if seed is not None:
            torch.manual_seed(int(seed))
        if per_example:
            outs = [aug_fn(x[i]) for i in range(x.shape[0])]
            bad = [i for i, o in enumerate(outs) if not isinstance(o, Tensor) or o.shape != x[i].shape]
            if bad:
                raise SpectraError(f"aug_fn must return a tensor of the input's shape {tuple(x[0].shape)}")
            x_aug = torch.stack(outs)
        else:
            x_aug = aug_fn(x)
            if not isinstance(x_aug, Tensor) or x_aug.shape != x.shape:
                raise SpectraError(f"aug_fn must return a tensor of the input's shape {tuple(x.shape)}")
    fdtype = x.dtype if x.is_floating_point() else torch.float32
    delta = x_aug.to(fdtype) - x.to(fdtype)
    check_finite(delta, "aug(x) - x")
    norms = perturbation_norms(delta)
    return AugmentationDeltas(x_aug=x_aug, delta=delta, l2=norms["l2"], linf=norms["linf"])
