"""Symmetric label noise: exact count, always a different class, uniform over the others, seeded."""

from __future__ import annotations

import pytest
import torch

from coreaug.data.base import ArrayDataset, DataBundle
from coreaug.data.imagefolder import ImageFileDataset
from coreaug.data.noise import add_label_noise, inject_symmetric_noise
from coreaug.errors import ConfigError, InputError


def _targets(n: int, c: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n, rate", [(1000, 0.2), (999, 0.5), (10, 0.35), (7, 0.0), (50, 0.98)])
def test_exact_count_and_flips_differ(n, rate):
    clean = _targets(n, 10)
    before = clean.clone()
    noisy, flipped = inject_symmetric_noise(clean, rate, 10, seed=1)
    assert torch.equal(clean, before)  # input not mutated
    assert noisy.dtype == torch.long and flipped.dtype == torch.bool and noisy.shape == flipped.shape == (n,)
    assert int(flipped.sum()) == round(rate * n)
    assert bool((noisy[flipped] != clean[flipped]).all())
    assert torch.equal(noisy[~flipped], clean[~flipped])
    assert int(noisy.min()) >= 0 and int(noisy.max()) < 10


def test_flip_targets_uniform_over_other_classes():
    c, n = 5, 200_000
    clean = torch.zeros(n, dtype=torch.long)  # all class 0: flips must land on 1..4 evenly
    noisy, flipped = inject_symmetric_noise(clean, 0.5, c, seed=7)
    counts = torch.bincount(noisy[flipped], minlength=c)
    assert counts[0] == 0
    expected = flipped.sum().item() / (c - 1)  # 25,000 each; sd ≈ 137
    assert ((counts[1:].float() - expected).abs() < 0.03 * expected).all(), counts.tolist()
    # and which examples are flipped is uniform: both halves of the index range get ~half
    first_half = flipped[: n // 2].sum().item()
    assert abs(first_half - n // 4) < 0.02 * n / 4


def test_flip_pairs_uniform_for_every_source_class():
    c = 4
    clean = torch.arange(c).repeat(40_000)
    noisy, flipped = inject_symmetric_noise(clean, 0.6, c, seed=3)
    table = torch.zeros(c, c)
    table.index_put_((clean[flipped], noisy[flipped]), torch.ones(int(flipped.sum())), accumulate=True)
    assert torch.diagonal(table).sum() == 0
    off = table[~torch.eye(c, dtype=torch.bool)].view(c, c - 1)
    expected = off.sum() / off.numel()
    assert ((off - expected).abs() < 0.05 * expected).all(), table


def test_deterministic_under_seed():
    clean = _targets(500, 7)
    a = inject_symmetric_noise(clean, 0.3, 7, seed=11)
    b = inject_symmetric_noise(clean.tolist(), 0.3, 7, seed=11)
    c = inject_symmetric_noise(clean, 0.3, 7, seed=12)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan"), "0.2", True])
def test_rate_validation(rate):
    with pytest.raises(ConfigError, match="rate"):
        inject_symmetric_noise(torch.zeros(10, dtype=torch.long), rate, 3, seed=0)


def test_targets_validation():
    with pytest.raises(InputError, match=r"\[0, 3\)"):
        inject_symmetric_noise(torch.tensor([0, 1, 3]), 0.5, 3, seed=0)
    with pytest.raises(InputError, match="1-D integer"):
        inject_symmetric_noise(torch.zeros(4, 2, dtype=torch.long), 0.5, 3, seed=0)
    with pytest.raises(InputError, match="1-D integer"):
        inject_symmetric_noise(torch.zeros(4), 0.5, 3, seed=0)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        inject_symmetric_noise(torch.zeros(4, dtype=torch.long), 0.5, 1, seed=0)


def _bundle() -> DataBundle:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (300, 1, 4, 4), dtype=torch.uint8, generator=g)
    train = ArrayDataset(images, torch.randint(0, 10, (300,), generator=g))
    test = ArrayDataset(images[:50], torch.randint(0, 10, (50,), generator=g))
    return DataBundle("toy", train, test, 10, 1, 4, (0.5,), (0.25,), [str(k) for k in range(10)])


def test_add_label_noise_to_bundle_keeps_images_and_test_clean():
    bundle = _bundle()
    noisy = add_label_noise(bundle, 0.4, seed=5)
    record = noisy.extra["label_noise"]
    assert isinstance(noisy.train, ArrayDataset) and noisy.train.images is bundle.train.images
    assert int(record["flipped"].sum()) == round(0.4 * len(bundle.train))
    assert torch.equal(record["clean_targets"], bundle.train.targets)
    assert bool((noisy.train.targets[record["flipped"]] != bundle.train.targets[record["flipped"]]).all())
    assert noisy.test is bundle.test and "label_noise" not in bundle.extra
    _, y, i = noisy.train[int(record["flipped"].nonzero()[0])]
    assert y != int(bundle.train.targets[i])


def test_image_file_dataset_with_targets():
    ds = ImageFileDataset(["a.png", "b.png", "c.png"], [0, 1, 2])
    view = ds.with_targets(torch.tensor([2, 2, 0]))
    assert view.samples == ds.samples and view.targets.tolist() == [2, 2, 0] and ds.targets.tolist() == [0, 1, 2]
