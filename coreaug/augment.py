"""Weak and strong augmentations, built on ``torchvision.transforms.v2``.

Images enter as ``uint8`` tensors ``(C, H, W)`` and leave as normalised ``float32`` tensors. A
pipeline is ``weak → strong (uint8 ops) → to float in [0, 1] → strong (float ops) → normalise``:

* weak: what every training example gets in place (``none``, ``crop``, ``cropflip``, ``rrc-flip``);
* strong: what the *appended* copies get (docs/paper-notes.md §4: strong augmentation is applied on top of
  weak augmentation) — ``autoaugment``, ``randaugment``, ``trivialaugment``, ``augmix``,
  ``randomerasing``, ``cropflip``, and the paper's theoretical model of augmentation, bounded
  additive noise x → x + δ with ``gaussian-noise`` (‖δ‖₂ ≤ ε) or ``uniform-noise`` (‖δ‖∞ ≤ ε).

Every name works on 1-channel 8×8 digits as well as 32×32 RGB and larger images.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn
from torchvision.transforms import v2

from coreaug.errors import ConfigError

WEAK_AUGMENTATIONS: tuple[str, ...] = ("none", "crop", "cropflip", "rrc-flip")
STRONG_AUGMENTATIONS: tuple[str, ...] = (
    "none", "autoaugment", "randaugment", "trivialaugment", "augmix", "randomerasing", "cropflip",
    "gaussian-noise", "uniform-noise",
)
AUTOAUGMENT_POLICIES = {
    "imagenet": v2.AutoAugmentPolicy.IMAGENET,
    "cifar10": v2.AutoAugmentPolicy.CIFAR10,
    "svhn": v2.AutoAugmentPolicy.SVHN,
}


class AdditiveNoise(nn.Module):
    """Bounded additive perturbation x → clamp(x + δ, 0, 1) on a float image in [0, 1].

    ``kind="gaussian"``: δ ~ N(0, σ²I) with σ = ε/√D (D = number of pixels, so E‖δ‖₂² = ε²), then
    projected onto the L2 ball ‖δ‖₂ ≤ ε. ``kind="uniform"``: δ ~ U[−ε, ε]^D, so ‖δ‖∞ ≤ ε.
    """

    def __init__(self, kind: str = "gaussian", eps: float = 0.5):
        super().__init__()
        if kind not in ("gaussian", "uniform"):
            raise ConfigError(f"unknown noise kind {kind!r}; use gaussian or uniform")
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
            raise ConfigError(f"noise radius eps must be a positive number, got {eps!r}")
        self.kind, self.eps = kind, float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            raise ConfigError("AdditiveNoise expects a float image in [0, 1]; put it after ToDtype")
        if self.kind == "gaussian":
            delta = torch.randn_like(x) * (self.eps / math.sqrt(x.numel()))
            norm = delta.norm()
            if norm > self.eps:
                delta = delta * (self.eps / norm)
        else:
            delta = (torch.rand_like(x) * 2 - 1) * self.eps
        return (x + delta).clamp_(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, eps={self.eps}"


def _pad_for(image_size: int) -> int:
    # CIFAR convention is 4 px of padding at 32 px; scale it down for tiny images (1 px at 8 px).
    return max(1, round(image_size / 8))


def weak_ops(name: str, image_size: int) -> list[Callable]:
    """The uint8 ops of weak augmentation ``name``."""
    if name == "none":
        return []
    if name == "crop":
        return [v2.RandomCrop(image_size, padding=_pad_for(image_size))]
    if name == "cropflip":
        return [v2.RandomCrop(image_size, padding=_pad_for(image_size)), v2.RandomHorizontalFlip()]
    if name == "rrc-flip":
        return [v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip()]
    raise ConfigError(f"unknown weak augmentation {name!r}; choose one of: {', '.join(WEAK_AUGMENTATIONS)}")


def strong_ops(
    name: str, image_size: int, *, policy: str = "imagenet", noise_eps: float = 0.5
) -> tuple[list[Callable], list[Callable]]:
    """The (uint8 ops, float ops) of strong augmentation ``name``."""
    if name == "none":
        return [], []
    if name == "autoaugment":
        if policy not in AUTOAUGMENT_POLICIES:
            raise ConfigError(f"unknown AutoAugment policy {policy!r}; choose one of: {', '.join(AUTOAUGMENT_POLICIES)}")
        return [v2.AutoAugment(AUTOAUGMENT_POLICIES[policy])], []
    if name == "randaugment":
        return [v2.RandAugment()], []
    if name == "trivialaugment":
        return [v2.TrivialAugmentWide()], []
    if name == "augmix":
        # Official repo's options: width 3, depth U{1..3}, severity 1, alpha 1 (docs/paper-notes.md §4).
        return [v2.AugMix(severity=1, mixture_width=3, chain_depth=-1, alpha=1.0)], []
    if name == "randomerasing":
        return [], [v2.RandomErasing(p=1.0, scale=(0.02, 0.25))]
    if name == "cropflip":
        return weak_ops("cropflip", image_size), []
    if name == "gaussian-noise":
        return [], [AdditiveNoise("gaussian", noise_eps)]
    if name == "uniform-noise":
        return [], [AdditiveNoise("uniform", noise_eps)]
    raise ConfigError(f"unknown strong augmentation {name!r}; choose one of: {', '.join(STRONG_AUGMENTATIONS)}")


def build_transform(
    *,
    image_size: int,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    weak: str = "none",
    strong: str = "none",
    policy: str = "imagenet",
    noise_eps: float = 0.5,
    resize: int | None = None,
) -> v2.Compose:
    """Compose the pipeline ``uint8 (C,H,W) → float32 (C,H,W)``.

    Args:
        image_size: side of the (square) output image.
        mean, std: per-channel normalisation; ``None`` keeps pixels in [0, 1] (used by
            :func:`pixel_augmentation` to measure δ = aug(x) − x).
        weak: weak augmentation name (in-place, every example).
        strong: strong augmentation name (appended copies), applied after ``weak``.
        policy: AutoAugment policy (``imagenet``, ``cifar10``, ``svhn``).
        noise_eps: radius ε of the additive-noise augmentations, on the [0, 1] pixel scale.
        resize: if given, resize the shorter side to this (and centre-crop to ``image_size``)
            before any augmentation — used for ImageFolder data of varying size at test time.
    """
    ops: list[Callable] = []
    if resize is not None:
        ops += [v2.Resize(resize, antialias=True), v2.CenterCrop(image_size)]
    ops += weak_ops(weak, image_size)
    uint8_ops, float_ops = strong_ops(strong, image_size, policy=policy, noise_eps=noise_eps)
    ops += uint8_ops
    ops.append(v2.ToDtype(torch.float32, scale=True))
    ops += float_ops
    if mean is not None and std is not None:
        ops.append(v2.Normalize(list(mean), list(std)))
    return v2.Compose(ops)


def pixel_augmentation(name: str, image_size: int, **kw) -> Callable[[torch.Tensor], torch.Tensor]:
    """A callable mapping a float image batch in [0, 1] ``(N, C, H, W)`` to its strong augmentation.

    Each image is augmented independently (uint8 ops see the image quantised to 0..255). Used to
    express a real augmentation as an additive perturbation δ = aug(x) − x (``spectra.perturb``).
    """
    t = build_transform(image_size=image_size, mean=None, std=None, weak="none", strong=name, **kw)

    def apply(x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ConfigError(f"expected a batch of images (N, C, H, W), got shape {tuple(x.shape)}")
        as_uint8 = (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu()
        out = torch.stack([t(img) for img in as_uint8])
        return out.to(device=x.device, dtype=x.dtype)

    return apply
