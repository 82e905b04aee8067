"""Datasets: the embedded ``digits`` default and loaders for real image datasets on disk.

``load_data(name, root)`` returns a :class:`DataBundle` (train/test views returning
``(x, y, index)`` plus shape and normalisation facts). No loader ever downloads: a missing or
malformed path raises :class:`~coreaug.errors.DatasetNotFoundError` naming the expected layout.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from coreaug.data.base import ArrayDataset, DataBundle, IndexedDataset, channel_stats
from coreaug.data.noise import add_label_noise, inject_symmetric_noise
from coreaug.errors import ConfigError, DatasetNotFoundError

# name -> "module:function"; every function takes (root, **options) and returns a DataBundle.
DATASETS: dict[str, str] = {
    "digits": "coreaug.data.digits:load_digits_bundle",
    "cifar10": "coreaug.data.cifar:load_cifar10",
    "cifar100": "coreaug.data.cifar:load_cifar100",
    "svhn": "coreaug.data.svhn:load_svhn",
    "caltech256": "coreaug.data.imagefolder:load_caltech256",
    "tinyimagenet": "coreaug.data.imagefolder:load_tinyimagenet",
    "imagenet": "coreaug.data.imagefolder:load_imagenet",
    "imagefolder": "coreaug.data.imagefolder:load_imagefolder",
}


def load_data(
    name: str,
    root: str | None = None,
    *,
    image_size: int | None = None,
    resize: int | None = None,
    **options: Any,
) -> DataBundle:
    """Load dataset ``name`` (see :data:`DATASETS`); ``root`` is required for every dataset but digits.

    ``image_size`` / ``resize`` (output side and test-time resize side) reach the loaders that
    decode images of varying size (the ImageFolder family) when given; in-memory datasets have a
    fixed native size and ignore them. Any other ``options`` must be accepted by the loader.
    """
    key = name.lower()
    if key not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if key != "digits" and root is None:
        raise DatasetNotFoundError(f"dataset {name!r} needs a path: pass --data-root DIR (no downloads are attempted)")
    module_name, func_name = DATASETS[key].split(":")
    loader = getattr(importlib.import_module(module_name), func_name)
    accepted = [n for n, p in inspect.signature(loader).parameters.items() if p.kind == p.KEYWORD_ONLY or n != "root"]
    unknown = sorted(set(options) - set(accepted))
    for key_, value in (("image_size", image_size), ("resize", resize)):
        if value is not None and key_ in accepted:
            options[key_] = value
    if unknown:
        raise ConfigError(f"dataset {name!r} takes no option(s) {', '.join(unknown)}; it accepts: {', '.join(accepted) or 'none'}")
    return loader(**options) if key == "digits" else loader(root, **options)


__all__ = [
    "ArrayDataset", "DataBundle", "IndexedDataset", "DATASETS", "load_data", "channel_stats",
    "inject_symmetric_noise", "add_label_noise",
]
