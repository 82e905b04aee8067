"""The embedded default dataset: scikit-learn's ``load_digits`` (1,797 8×8 grey images, 10 classes).

It ships with scikit-learn, so every command runs out of the box without a download. Pixels
(0..16) are rescaled to ``uint8`` 0..255 and the split is a deterministic stratified 80/20.
"""

from __future__ import annotations

import numpy as np
import torch

from coreaug.data.base import ArrayDataset, DataBundle, channel_stats


def load_digits_bundle(*, test_fraction: float = 0.2, split_seed: int = 0) -> DataBundle:
    """Load the digits data as a :class:`DataBundle` with a stratified, seeded train/test split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    images = np.round(raw.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    labels = raw.target.astype(np.int64)
    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        idx, test_size=test_fraction, stratify=labels, random_state=split_seed
    )
    train_idx.sort()
    test_idx.sort()
    images_t = torch.from_numpy(images)
    labels_t = torch.from_numpy(labels)
    train = ArrayDataset(images_t[train_idx].contiguous(), labels_t[train_idx])
    test = ArrayDataset(images_t[test_idx].contiguous(), labels_t[test_idx])
    mean, std = channel_stats(train.images)
    return DataBundle(
        name="digits",
        train=train,
        test=test,
        num_classes=10,
        in_channels=1,
        image_size=8,
        mean=mean,
        std=std,
        classes=[str(d) for d in range(10)],
    )
