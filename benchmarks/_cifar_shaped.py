"""Synthetic CIFAR-10-format data for the pipeline benchmarks (``from _cifar_shaped import ...``).

:func:`write_cifar10` writes real ``cifar-10-batches-py`` pickles (``data_batch_1..5``,
``test_batch``, ``batches.meta``), so a benchmark runs the unmodified training path
(``load_data("cifar10", root)`` → views → loop). Images are learnable but not trivial: class ``c``
is a fixed random low-frequency colour template (upsampled 4×4 noise) plus per-image Gaussian noise
and a random shift, stored as uint8 3×32×32. ``signal`` (template amplitude) and ``noise`` (per-pixel
standard deviation) set the difficulty: the defaults give an easy task (a ResNet-20 reaches ≈ 97%
within a few epochs); a lower ``signal`` gives accuracies where subset methods can differ.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def _images(labels: np.ndarray, templates: np.ndarray, rng: np.random.Generator, signal: float,
            noise: float) -> np.ndarray:
    n = labels.size
    base = templates[labels]  # (n, 3, 32, 32)
    shift = rng.integers(-3, 4, size=(n, 2))
    out = np.empty_like(base)
    for dy in range(-3, 4):  # small random translations: the classes are not one fixed pixel pattern
        for dx in range(-3, 4):
            rows = np.nonzero((shift[:, 0] == dy) & (shift[:, 1] == dx))[0]
            out[rows] = np.roll(base[rows], (dy, dx), axis=(2, 3))
    out = 128.0 + signal * out + noise * rng.standard_normal(out.shape, dtype=np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def write_cifar10(root: str | Path, n_train: int, n_test: int, *, seed: int = 0, signal: float = 55.0,
                  noise: float = 45.0) -> Path:
    """Write ``n_train`` / ``n_test`` synthetic images (10 balanced classes) as CIFAR-10 pickles
    under ``root/cifar-10-batches-py`` and return ``root``."""
    rng = np.random.default_rng(seed)
    coarse = rng.standard_normal((10, 3, 4, 4)).astype(np.float32)
    templates = coarse.repeat(8, axis=2).repeat(8, axis=3)  # (10, 3, 32, 32), blocky colour layouts
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    y_train = rng.permutation(np.arange(n_train) % 10)
    y_test = rng.permutation(np.arange(n_test) % 10)
    x_train = _images(y_train, templates, rng, signal, noise).reshape(n_train, -1)
    x_test = _images(y_test, templates, rng, signal, noise).reshape(n_test, -1)
    for i, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        _dump(folder / f"data_batch_{i}", {b"labels": y_train[part].tolist(), b"data": x_train[part]})
    _dump(folder / "test_batch", {b"labels": y_test.tolist(), b"data": x_test})
    _dump(folder / "batches.meta", {b"label_names": [f"class{c}".encode() for c in range(10)]})
    return Path(root)


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=4)
