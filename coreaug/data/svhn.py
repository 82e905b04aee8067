"""SVHN (cropped digits, "format 2") from the official ``.mat`` files (never downloaded).

Expected layout: ``root/train_32x32.mat`` and ``root/test_32x32.mat`` (optionally
``root/extra_32x32.mat``). Each file holds ``X``, a ``32×32×3×N`` ``uint8`` array (H, W, C, N), and
``y``, an ``N×1`` array of labels 1..10 where **10 stands for the digit 0**; the loader maps 10 → 0
so that label ``k`` is digit ``k`` (labels already 0 are accepted as digit 0 too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from coreaug.data.base import ArrayDataset, DataBundle, channel_stats
from coreaug.errors import DataError, DatasetNotFoundError

__all__ = ["load_svhn"]

_LAYOUT = (
    "expected {root}/train_32x32.mat and {root}/test_32x32.mat (optionally extra_32x32.mat; "
    "the cropped-digits format 2 from the SVHN site; nothing is downloaded)"
)


def _read_mat(path: Path, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one SVHN ``.mat`` file → (uint8 images (N,3,32,32), int64 labels (N,) in 0..9)."""
    if not path.is_file():
        raise DatasetNotFoundError(f"SVHN file missing: {path} does not exist; {_LAYOUT.format(root=root)}")
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except Exception as exc:  # noqa: BLE001 - any read failure means a corrupted or foreign file
        raise DataError(f"SVHN file {path} is not a readable .mat file ({type(exc).__name__}: {exc})") from None
    if "X" not in mat or "y" not in mat:
        raise DataError(f"SVHN file {path} lacks the arrays 'X' and 'y' (found: {sorted(k for k in mat if not k.startswith('__'))})")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"])
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataError(f"SVHN file {path}: 'X' must have shape (32, 32, 3, N), got {x.shape}")
    if x.dtype != np.uint8:
        raise DataError(f"SVHN file {path}: 'X' must be uint8, got {x.dtype}")
    n = x.shape[3]
    if y.size != n or not (y.ndim == 1 or (y.ndim == 2 and 1 in y.shape)) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"SVHN file {path}: 'y' must hold {n} integer labels (N×1), got shape {y.shape} dtype {y.dtype}")
    y = y.reshape(-1).astype(np.int64)
    if y.size and (y.min() < 0 or y.max() > 10):
        raise DataError(
            f"SVHN file {path}: labels must lie in 1..10 (10 = digit 0), found range [{int(y.min())}, {int(y.max())}]"
        )
    y[y == 10] = 0
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))  # (H, W, C, N) -> (N, C, H, W)
    return images, y


def load_svhn(root: str | Path, *, use_extra: bool = False) -> DataBundle:
    """Load SVHN (73,257 train / 26,032 test, 32×32 RGB, digits 0..9).

    Args:
        root: folder holding ``train_32x32.mat`` and ``test_32x32.mat``.
        use_extra: also append the 531,131 ``extra_32x32.mat`` images to the training set.

    Returns:
        A :class:`DataBundle` of :class:`ArrayDataset` (``uint8`` ``(N, 3, 32, 32)``), labels 0..9
        (the file's label 10 is mapped to 0), mean/std computed on the training images.

    Raises:
        DatasetNotFoundError: ``root`` or a needed ``.mat`` file is missing.
        DataError: a file is unreadable or has wrong shapes, dtype or label range.
    """
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise DatasetNotFoundError(f"SVHN not found at {folder}: {_LAYOUT.format(root=folder)}")
    parts = [_read_mat(folder / "train_32x32.mat", folder)]
    if use_extra:
        parts.append(_read_mat(folder / "extra_32x32.mat", folder))
    x_test, y_test = _read_mat(folder / "test_32x32.mat", folder)
    x_train = torch.from_numpy(np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0])
    y_train = torch.from_numpy(np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1])
    if x_train.shape[0] == 0:
        raise DataError(f"SVHN at {folder}: train_32x32.mat holds no images")
    mean, std = channel_stats(x_train)
    return DataBundle(
        name="svhn",
        train=ArrayDataset(x_train, y_train),
        test=ArrayDataset(torch.from_numpy(x_test), torch.from_numpy(y_test)),
        num_classes=10,
        in_channels=3,
        image_size=32,
        mean=mean,
        std=std,
        classes=[str(d) for d in range(10)],
        extra={"root": str(folder), "use_extra": use_extra},
    )
