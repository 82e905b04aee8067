"""CIFAR-10 / CIFAR-100 from the official *python* pickle batches (never downloaded).

Expected layouts (``root`` may be the folder that contains the extracted archive or the
extracted folder itself)::

    cifar-10-batches-py/   data_batch_1 .. data_batch_5, test_batch, batches.meta
    cifar-100-python/      train, test, meta

Each batch is a pickled dict (written by Python 2, so keys are ``bytes``: ``b"data"``,
``b"labels"`` / ``b"fine_labels"``); ``data`` is an ``N×3072`` ``uint8`` array whose rows hold the
red, then green, then blue 32×32 plane in row-major order, so ``data.reshape(N, 3, 32, 32)`` is
the ``(N, C, H, W)`` image tensor. CIFAR-100 uses the 100 fine labels.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from coreaug.data.base import ArrayDataset, DataBundle, channel_stats
from coreaug.errors import DataError, DatasetNotFoundError

__all__ = ["load_cifar10", "load_cifar100"]

_SOURCE = "(the python version from the CIFAR site; nothing is downloaded)"
# "{root}" is the dataset folder itself (for a missing file) or "<root>/<folder>" (for a missing root).
CIFAR10_LAYOUT = "expected {root}/ to hold data_batch_1..5, test_batch and batches.meta " + _SOURCE
CIFAR100_LAYOUT = "expected {root}/ to hold train, test and meta " + _SOURCE


def _resolve_dir(root: str | Path, folder: str, marker: str, name: str, layout: str) -> Path:
    """Return the extracted folder: ``root/folder`` or ``root`` itself if it holds ``marker``."""
    root = Path(root).expanduser()
    if root.is_dir():
        if (root / folder).is_dir():
            return root / folder
        if (root / marker).exists():
            return root
    raise DatasetNotFoundError(f"{name} not found at {root}: {layout.format(root=root / folder)}")


def _get(d: dict, key: str) -> Any:
    """Look a key up as ``bytes`` (the official Python-2 pickles) or as ``str``."""
    if key.encode() in d:
        return d[key.encode()]
    if key in d:
        return d[key]
    raise KeyError(key)


def _unpickle(path: Path, name: str, layout: str, root: Path) -> dict:
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{name} file missing: {path} does not exist; {layout.format(root=root)}"
        )
    try:
        with open(path, "rb") as fh:
            obj = pickle.load(fh, encoding="bytes")
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupted file
        raise DataError(f"{name} file {path} is not a readable pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{name} file {path} should hold a dict, got {type(obj).__name__}")
    return obj


def _read_batch(path: Path, label_key: str, num_classes: int, name: str, layout: str, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file → (uint8 images (N,3,32,32), int64 labels (N,))."""
    d = _unpickle(path, name, layout, root)
    try:
        data = np.asarray(_get(d, "data"))
        labels = np.asarray(_get(d, label_key))
    except KeyError as exc:
        raise DataError(f"{name} file {path} lacks the key {exc.args[0]!r} (expected 'data' and {label_key!r})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{name} file {path}: 'data' must have shape (N, 3072), got {data.shape}")
    if data.dtype != np.uint8:
        raise DataError(f"{name} file {path}: 'data' must be uint8, got {data.dtype}")
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{name} file {path}: {label_key!r} must be {data.shape[0]} integer labels, got shape {labels.shape} "
            f"dtype {labels.dtype}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{name} file {path}: labels must lie in [0, {num_classes}), found range "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _read_names(path: Path, key: str, num_classes: int, name: str, layout: str, root: Path) -> list[str]:
    d = _unpickle(path, name, layout, root)
    try:
        names = list(_get(d, key))
    except KeyError:
        raise DataError(f"{name} file {path} lacks the key {key!r}") from None
    names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
    if len(names) != num_classes:
        raise DataError(f"{name} file {path}: {key!r} lists {len(names)} classes, expected {num_classes}")
    return names


def _bundle(
    name: str, train: Sequence[tuple[np.ndarray, np.ndarray]], test: tuple[np.ndarray, np.ndarray],
    classes: list[str], root: Path,
) -> DataBundle:
    x_train = torch.from_numpy(np.ascontiguousarray(np.concatenate([b[0] for b in train])))
    y_train = torch.from_numpy(np.concatenate([b[1] for b in train]))
    x_test = torch.from_numpy(np.ascontiguousarray(test[0]))
    y_test = torch.from_numpy(test[1])
    if x_train.shape[0] == 0:
        raise DataError(f"{name} at {root}: the training batches hold no images")
    mean, std = channel_stats(x_train)
    return DataBundle(
        name=name.lower().replace("-", ""),
        train=ArrayDataset(x_train, y_train),
        test=ArrayDataset(x_test, y_test),
        num_classes=len(classes),
        in_channels=3,
        image_size=32,
        mean=mean,
        std=std,
        classes=classes,
        extra={"root": str(root)},
    )


def load_cifar10(root: str | Path) -> DataBundle:
    """Load CIFAR-10 (50,000 train / 10,000 test, 32×32 RGB, 10 classes) from the python batches.

    Args:
        root: the folder containing ``cifar-10-batches-py/``, or that folder itself.

    Returns:
        A :class:`DataBundle` of two :class:`ArrayDataset` (``uint8`` ``(N, 3, 32, 32)``), with
        per-channel mean/std computed on the training images and ``classes`` from ``batches.meta``.

    Raises:
        DatasetNotFoundError: ``root`` or one of the batch files is missing.
        DataError: a file is not a valid pickle or has wrong keys, shapes, dtype or label range.
    """
    name, layout = "CIFAR-10", CIFAR10_LAYOUT
    folder = _resolve_dir(root, "cifar-10-batches-py", "data_batch_1", name, layout)
    classes = _read_names(folder / "batches.meta", "label_names", 10, name, layout, folder)
    train = [_read_batch(folder / f"data_batch_{i}", "labels", 10, name, layout, folder) for i in range(1, 6)]
    test = _read_batch(folder / "test_batch", "labels", 10, name, layout, folder)
    return _bundle(name, train, test, classes, folder)


def load_cifar100(root: str | Path) -> DataBundle:
    """Load CIFAR-100 (50,000 train / 10,000 test, 32×32 RGB, 100 fine classes) from the python files.

    Args:
        root: the folder containing ``cifar-100-python/``, or that folder itself.

    Returns:
        A :class:`DataBundle` as :func:`load_cifar10`, labelled with ``fine_labels`` and
        ``classes`` from ``meta``'s ``fine_label_names``.

    Raises:
        DatasetNotFoundError: ``root`` or one of ``train``/``test``/``meta`` is missing.
        DataError: a file is not a valid pickle or has wrong keys, shapes, dtype or label range.
    """
    name, layout = "CIFAR-100", CIFAR100_LAYOUT
    folder = _resolve_dir(root, "cifar-100-python", "train", name, layout)
    classes = _read_names(folder / "meta", "fine_label_names", 100, name, layout, folder)
    train = [_read_batch(folder / "train", "fine_labels", 100, name, layout, folder)]
    test = _read_batch(folder / "test", "fine_labels", 100, name, layout, folder)
    return _bundle(name, train, test, classes, folder)
