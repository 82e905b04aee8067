"""Models. Every model follows one convention used by proxies and spectra:

* ``model.fc`` is the final ``nn.Linear`` classifier;
* ``model.embed(x)`` returns the penultimate embedding (the input of ``fc``),
  so ``model(x) == model.fc(model.embed(x))``.

Models by name from the ecosystem, ``timm:<name>`` and ``torchvision:<name>``
(:mod:`coreaug.models.ecosystem`), are returned as their library builds them (random init); they
have no ``embed``, and their classifier is :func:`classifier_layer` (checked at build time to turn
a flat embedding into the logits).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from torch import nn

from coreaug.errors import ConfigError
from coreaug.models.ecosystem import (
    PREFIX_FORMS, PREFIX_HELP, build_ecosystem_model, check_ecosystem_name, split_model_name,
)
from coreaug.models.resnet_cifar import CifarResNet, resnet20, resnet32, resnet44, resnet56, resnet110
from coreaug.models.small import MLP, SmallCNN
from coreaug.models.torchvision_resnet import TorchvisionResNet

MODELS: tuple[str, ...] = (
    "mlp", "mlp-sigmoid", "cnn", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet18", "resnet50",
)


def build_model(
    name: str,
    num_classes: int,
    *,
    in_channels: int = 3,
    image_size: int = 32,
    weights_path: str | Path | None = None,
) -> nn.Module:
    """Build model ``name`` (see :data:`MODELS`, or ``timm:<name>`` / ``torchvision:<name>``) for the
    given input shape and number of classes, randomly initialised.

    ``weights_path`` (torchvision ResNets and ecosystem models) loads a local state dict.
    """
    eco = split_model_name(name)
    if eco is not None:
        return build_ecosystem_model(*eco, num_classes, in_channels=in_channels, image_size=image_size,
                                     weights_path=weights_path)
    key = name.lower()
    if weights_path is not None and key not in ("resnet18", "resnet50"):
        raise ConfigError(f"--weights is only supported for resnet18/resnet50, timm:<name> and torchvision:<name>, "
                          f"not {name!r}")
    cifar: dict[str, Callable[..., CifarResNet]] = {
        "resnet20": resnet20, "resnet32": resnet32, "resnet44": resnet44, "resnet56": resnet56, "resnet110": resnet110,
    }
    if key == "mlp":
        return MLP(in_channels * image_size * image_size, num_classes, hidden=(128,))
    if key == "mlp-sigmoid":  # the paper repo's two-layer sigmoid nets for theory checks
        return MLP(in_channels * image_size * image_size, num_classes, hidden=(100,), activation="sigmoid")
    if key == "cnn":
        return SmallCNN(in_channels, num_classes)
    if key in cifar:
        return cifar[key](num_classes=num_classes, in_channels=in_channels)
    if key in ("resnet18", "resnet50"):
        return TorchvisionResNet(key, num_classes, in_channels=in_channels, weights_path=weights_path)
    raise _unknown_model(name)


def _unknown_model(name: str) -> ConfigError:
    return ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}, or {PREFIX_FORMS}")


def check_model_name(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` names a model :func:`build_model` knows.

    Built-in names are checked against :data:`MODELS`; for ``timm:``/``torchvision:`` names the library
    is imported (lazily, only then) and asked whether it has the architecture.
    """
    eco = split_model_name(name)
    if eco is not None:
        check_ecosystem_name(*eco)
    elif str(name).lower() not in MODELS:
        raise _unknown_model(name)


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load trained weights into ``model`` from ``path`` and return it.

    ``path`` is a ``coreaug train`` checkpoint (its ``"model"`` entry) or a plain state dict, read by
    :func:`coreaug.io.read_state_dict` (the ``module.`` prefix of DistributedDataParallel state dicts is
    stripped). A missing, unreadable or ill-fitting file raises :class:`~coreaug.errors.CheckpointError`
    with a one-line message.
    """
    from coreaug.io import fit_state_dict, read_state_dict

    return fit_state_dict(model, read_state_dict(path, what="checkpoint"), path, what="checkpoint")


def classifier_layer(model: nn.Module) -> nn.Linear:
    """The model's final ``nn.Linear`` classifier: what ``model.get_classifier()`` returns (timm) when
    that is an ``nn.Linear``, else ``model.fc`` if it is one, else the last ``nn.Linear`` in module order.
    """
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    get_classifier = getattr(model, "get_classifier", None)
    head = get_classifier() if callable(get_classifier) else None
    if isinstance(head, nn.Linear):
        return head
    fc = getattr(model, "fc", None)
    if isinstance(fc, nn.Linear):
        return fc
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"model {type(model).__name__} has no nn.Linear classifier")
    return linears[-1]


def last_linear(model: nn.Module) -> nn.Linear:
    """The model's final classifier (see :func:`classifier_layer`; the name predates timm models)."""
    return classifier_layer(model)


__all__ = [
    "MODELS", "PREFIX_HELP", "build_model", "check_model_name", "load_weights", "classifier_layer", "last_linear",
    "MLP", "SmallCNN", "CifarResNet", "TorchvisionResNet",
]
