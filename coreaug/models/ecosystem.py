"""Models by name from the ecosystem: ``timm:<name>`` and ``torchvision:<name>``.

Always randomly initialised: ``timm.create_model(name, pretrained=False, ...)`` and
``torchvision.models.get_model(name, weights=None, ...)``; nothing is ever downloaded. A local state
dict (``--weights FILE``) is loaded afterwards by :func:`load_local_state`.

These models are returned as their library builds them (no wrapper, so their state-dict keys are the
library's). What the rest of coreaug needs from them — a final ``nn.Linear`` classifier, found by
:func:`coreaug.models.classifier_layer`, whose output *is* the model's output and whose input is the
flat (batch, features) embedding — is checked once at build time by :func:`check_convention`.

``timm`` is an optional extra (``pip install -e ".[timm]"``); it is imported only when a ``timm:``
name is used.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from coreaug.errors import ConfigError, first_line

PREFIXES: tuple[str, ...] = ("timm", "torchvision")
TIMM_INSTALL = 'pip install -e ".[timm]" (or pip install "coreaug[timm]")'
HOW_TO_LIST: dict[str, str] = {
    "timm": "python -c \"import timm; print(timm.list_models('*resnet*'))\"",
    "torchvision": "python -c \"import torchvision; print(torchvision.models.list_models(torchvision.models))\"",
}
#: The two forms, for error messages.
PREFIX_FORMS = "timm:<name> (needs the [timm] extra) or torchvision:<name>"
#: One line for ``coreaug info``.
PREFIX_HELP = ("timm:<name> (random init; needs the [timm] extra) or torchvision:<name> (random init); "
               "--weights FILE loads a local state dict; never a download")


def _first_line(exc: BaseException) -> str:
    return first_line(exc) or type(exc).__name__


def split_model_name(name: str) -> tuple[str, str] | None:
    """``("timm", "resnet10t")`` for ``"timm:resnet10t"``; ``None`` for a built-in name (no colon).

    Raises :class:`ConfigError` for an unknown prefix or an empty architecture name.
    """
    prefix, sep, arch = str(name).partition(":")
    if not sep:
        return None
    prefix, arch = prefix.strip().lower(), arch.strip()
    if prefix not in PREFIXES:
        raise ConfigError(f"unknown model prefix {prefix!r} in {name!r}; use timm:<name> or torchvision:<name>")
    if not arch:
        raise ConfigError(f"model {name!r} names no architecture, e.g. timm:resnet10t or torchvision:resnet18")
    return prefix, arch


def _import_timm() -> Any:
    try:
        import timm
    except ImportError:
        raise ConfigError(f"timm: models need the optional timm package: {TIMM_INSTALL}") from None
    return timm


def _torchvision_names() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)  # classification models only


def _unknown(prefix: str, arch: str, names: list[str]) -> ConfigError:
    close = difflib.get_close_matches(arch, names, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ConfigError(f"unknown {prefix} model {arch!r}{hint}; list names with {HOW_TO_LIST[prefix]}")


def check_ecosystem_name(prefix: str, arch: str) -> None:
    """Raise :class:`ConfigError` unless ``arch`` is a model of ``prefix``'s library (imported lazily)."""
    if prefix == "timm":
        timm = _import_timm()
        if not timm.is_model(arch):
            raise _unknown(prefix, arch, timm.list_models())
    elif arch not in _torchvision_names():
        raise _unknown(prefix, arch, _torchvision_names())


# ----------------------------------------------------------------------------------------------
# building
# ----------------------------------------------------------------------------------------------


def _build_timm(arch: str, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """``timm.create_model`` with random init; ``img_size`` is passed to the models that take one (ViTs …)."""
    timm = _import_timm()
    kw = dict(pretrained=False, num_classes=num_classes, in_chans=in_channels)
    try:
        return timm.create_model(arch, img_size=image_size, **kw)
    except TypeError as exc:  # the model has no img_size argument (CNNs pool adaptively)
        if "img_size" not in str(exc):
            raise
    return timm.create_model(arch, **kw)


def _torchvision_options(arch: str, image_size: int) -> dict[str, Any]:
    """Builder options some torchvision families need for a non-default input or a plain-tensor output."""
    if arch.startswith("vit_"):
        return {"image_size": image_size}
    if arch.startswith("maxvit"):
        return {"input_size": (image_size, image_size)}
    if arch in ("googlenet", "inception_v3"):  # no auxiliary heads: forward returns the logits tensor
        return {"aux_logits": False, "init_weights": True}
    return {}


def first_conv_name(model: nn.Module) -> str | None:
    """Name of the first ``nn.Conv2d`` in module order (the stem), or ``None``."""
    return next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)


def adapt_first_conv(model: nn.Module, in_channels: int, label: str) -> None:
    """Replace the stem ``Conv2d`` (3 input channels) by a fresh one taking ``in_channels``."""
    name = first_conv_name(model)
    conv = None if name is None else model.get_submodule(name)
    if conv is None or conv.in_channels != 3 or conv.groups != 1:
        raise ConfigError(f"cannot adapt {label} to {in_channels} input channel(s): its first layer is not a "
                          f"plain 3-channel Conv2d")
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                    dilation=conv.dilation, bias=conv.bias is not None, padding_mode=conv.padding_mode)
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent), leaf, new)


def _build_torchvision(arch: str, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    import torchvision

    net = torchvision.models.get_model(arch, weights=None, num_classes=num_classes,
                                       **_torchvision_options(arch, image_size))
    if in_channels != 3:
        adapt_first_conv(net, in_channels, f"torchvision:{arch}")
    return net


def check_convention(model: nn.Module, label: str, in_channels: int, image_size: int, num_classes: int) -> None:
    """One eval-mode forward of a zero batch: the classifier (:func:`coreaug.models.classifier_layer`)
    must produce the model's output from a flat ``(batch, in_features)`` embedding, as the proxy pass,
    the selectors and the diagnostics assume. Raises :class:`ConfigError` otherwise, or when the model
    cannot run on ``in_channels × image_size × image_size`` inputs. Train/eval flags are restored."""
    from coreaug.models import classifier_layer

    try:
        fc = classifier_layer(model)
    except ConfigError:
        raise ConfigError(f"{label} has no nn.Linear classifier, which the proxy pass needs; "
                          f"it is not supported") from None
    seen: dict[str, torch.Tensor] = {}
    handle = fc.register_forward_hook(lambda _m, inp, out: seen.update(h=inp[0], z=out))
    flags = [(m, m.training) for m in model.modules()]
    x = torch.zeros(2, in_channels, image_size, image_size)
    try:
        model.eval()
        with torch.no_grad():
            out = model(x)
    except Exception as exc:  # each library raises its own types for a bad input size
        raise ConfigError(f"{label} cannot run on {in_channels}x{image_size}x{image_size} inputs (pick a model "
                          f"that fits, or a larger image_size where the dataset has one): {_first_line(exc)}") from None
    finally:
        handle.remove()
        for m, flag in flags:
            m.training = flag
    h, z = seen.get("h"), seen.get("z")
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        raise ConfigError(f"{label} does not return a (batch, {num_classes}) logits tensor; it is not supported")
    if z is None or h is None or h.ndim != 2 or not torch.equal(z, out):
        raise ConfigError(f"{label}: its classifier nn.Linear does not produce the logits from a flat embedding, "
                          f"which the proxy pass needs; it is not supported")


def build_ecosystem_model(
    prefix: str,
    arch: str,
    num_classes: int,
    *,
    in_channels: int = 3,
    image_size: int = 32,
    weights_path: str | Path | None = None,
) -> nn.Module:
    """Build ``prefix:arch`` (random init), load ``weights_path`` if given, check the classifier convention."""
    label = f"{prefix}:{arch}"
    check_ecosystem_name(prefix, arch)
    build: Callable[..., nn.Module] = _build_timm if prefix == "timm" else _build_torchvision
    try:
        model = build(arch, num_classes, in_channels, image_size)
    except ConfigError:
        raise
    except Exception as exc:  # the library's own error for options the architecture rejects
        raise ConfigError(f"{prefix} cannot build {arch!r} for {num_classes} classes on {in_channels}x{image_size}"
                          f"x{image_size} inputs: {_first_line(exc)}") from None
    check_convention(model, label, in_channels, image_size, num_classes)
    if weights_path is not None:
        load_local_state(model, weights_path, label)
    return model


# ----------------------------------------------------------------------------------------------
# local weights
# ----------------------------------------------------------------------------------------------


def _fit_for_finetuning(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` adjusted for fine-tuning: classifier entries with another number of classes are
    replaced by the model's fresh ones (the classifier keeps its random init), and a 3-channel stem
    is summed over colour for a 1-channel model."""
    from coreaug.models import classifier_layer

    own = model.state_dict()
    fc = classifier_layer(model)
    fc_name = next(n for n, m in model.named_modules() if m is fc)
    out = dict(state)
    for key in (f"{fc_name}.weight", f"{fc_name}.bias"):
        if key in out and key in own and out[key].shape[0] != own[key].shape[0]:
            out[key] = own[key]
    stem = first_conv_name(model)
    key = f"{stem}.weight"
    if stem is not None and key in out and key in own and out[key].ndim == 4 and own[key].ndim == 4:
        if own[key].shape[1] == 1 and out[key].shape[1] == 3 and out[key].shape[0] == own[key].shape[0]:
            out[key] = out[key].sum(dim=1, keepdim=True)
    return out


def load_local_state(model: nn.Module, path: str | Path, label: str) -> nn.Module:
    """Load the local state dict at ``path`` into ``model`` (read by :func:`coreaug.io.read_state_dict`).

    Every key must fit, except a classifier with another number of classes (it keeps its random
    init) and a 3-channel stem loaded into a 1-channel model (summed over colour). One-line
    :class:`CheckpointError` otherwise.
    """
    from coreaug.io import fit_state_dict, read_state_dict

    return fit_state_dict(model, _fit_for_finetuning(model, read_state_dict(path)), path, label=label)
