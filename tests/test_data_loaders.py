"""Real-dataset loaders on tiny fixtures written in the official on-disk formats.

CIFAR: Python pickles with ``bytes`` keys (as the Python-2 originals load); SVHN: ``.mat`` files via
``scipy.io.savemat`` in the (H, W, C, N) layout with label 10 for the digit 0; ImageFolder trees of
small PNG/JPEG files written with PIL.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from coreaug.augment import build_transform
from coreaug.data import DATASETS, load_data
from coreaug.data.base import channel_stats
from coreaug.data.cifar import load_cifar10, load_cifar100
from coreaug.data.imagefolder import (
    IMAGENET_MEAN,
    ImageFileDataset,
    load_caltech256,
    load_imagefolder,
    load_imagenet,
    load_tinyimagenet,
)
from coreaug.data.svhn import load_svhn
from coreaug.errors import ConfigError, DataError, DatasetNotFoundError

# ------------------------------------------------------------------------------------ CIFAR


def _cifar_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _dump(path: Path, obj) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def make_cifar10(root: Path, per_batch: int = 4, test_n: int = 5) -> Path:
    """Write ``root/cifar-10-batches-py`` with per_batch images in each of 5 batches."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"class{k}".encode() for k in range(10)]
    _dump(folder / "batches.meta", {b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072})
    for i in range(1, 6):
        rows = _cifar_rows(per_batch, i)
        labels = [(i * per_batch + j) % 10 for j in range(per_batch)]
        _dump(folder / f"data_batch_{i}", {b"batch_label": b"training batch", b"labels": labels, b"data": rows,
                                           b"filenames": [b"x.png"] * per_batch})
    _dump(folder / "test_batch", {b"labels": [j % 10 for j in range(test_n)], b"data": _cifar_rows(test_n, 99)})
    return folder


def make_cifar100(root: Path, n: int = 6, test_n: int = 3) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    _dump(folder / "meta", {b"fine_label_names": [f"fine{k}".encode() for k in range(100)],
                            b"coarse_label_names": [f"coarse{k}".encode() for k in range(20)]})
    _dump(folder / "train", {b"data": _cifar_rows(n, 1), b"fine_labels": [99, 0, 5, 42, 7, 1][:n],
                             b"coarse_labels": [0] * n})
    _dump(folder / "test", {b"data": _cifar_rows(test_n, 2), b"fine_labels": [3, 98, 0][:test_n],
                            b"coarse_labels": [0] * test_n})
    return folder


def test_cifar10_shapes_labels_classes_and_stats(tmp_path):
    make_cifar10(tmp_path)
    b = load_cifar10(tmp_path)
    assert b.train.images.shape == (20, 3, 32, 32) and b.train.images.dtype == torch.uint8
    assert b.test.images.shape == (5, 3, 32, 32)
    assert b.train.targets.dtype == torch.long
    assert b.train.targets.tolist() == [(i * 4 + j) % 10 for i in range(1, 6) for j in range(4)]
    assert b.classes == [f"class{k}" for k in range(10)]
    assert (b.num_classes, b.in_channels, b.image_size, b.name) == (10, 3, 32, "cifar10")
    mean, std = channel_stats(b.train.images)
    assert np.allclose(b.mean, mean) and np.allclose(b.std, std)
    x, y, i = b.train[7]
    assert x.shape == (3, 32, 32) and (y, i) == (b.train.targets[7].item(), 7)
    # the same data through the registry, and with root = the batches folder itself
    again = load_data("cifar10", str(tmp_path / "cifar-10-batches-py"))
    assert torch.equal(again.train.images, b.train.images)


def test_cifar_pixel_layout_is_planar_rgb_row_major(tmp_path):
    folder = make_cifar10(tmp_path)
    rows = _cifar_rows(4, 1)
    # channel c, row h, column w of image j sits at data[j, c*1024 + h*32 + w]
    rows[2] = 0
    rows[2, 1 * 1024 + 5 * 32 + 17] = 201  # green, h=5, w=17
    rows[2, 2 * 1024 + 31 * 32 + 0] = 77  # blue, h=31, w=0
    _dump(folder / "data_batch_1", {b"labels": [0, 1, 2, 3], b"data": rows})
    img = load_cifar10(tmp_path).train.images[2]
    assert img[1, 5, 17] == 201 and img[2, 31, 0] == 77
    assert int(img.sum()) == 201 + 77


def test_cifar100_fine_labels_and_names(tmp_path):
    make_cifar100(tmp_path)
    b = load_data("cifar100", str(tmp_path))
    assert b.num_classes == 100 and b.classes[99] == "fine99" and len(b.classes) == 100
    assert b.train.targets.tolist() == [99, 0, 5, 42, 7, 1]
    assert b.test.targets.tolist() == [3, 98, 0]
    assert b.train.images.shape == (6, 3, 32, 32)


def test_cifar_missing_root_and_missing_file(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError, match="nowhere.*cifar-10-batches-py.*data_batch_1..5"):
        load_cifar10(missing)
    with pytest.raises(DatasetNotFoundError, match="cifar-100-python"):
        load_cifar100(tmp_path)  # exists but has no CIFAR-100 folder
    folder = make_cifar10(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError) as err:
        load_cifar10(tmp_path)
    assert str(folder / "data_batch_3") in str(err.value) and "\n" not in str(err.value)


def test_cifar_corrupted_pickle(tmp_path):
    folder = make_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match="test_batch.*not a readable pickle"):
        load_cifar10(tmp_path)


@pytest.mark.parametrize(
    "batch, match",
    [
        ({b"data": np.zeros((4, 3000), np.uint8), b"labels": [0, 1, 2, 3]}, r"shape \(N, 3072\)"),
        ({b"data": np.zeros((4, 3072), np.float32), b"labels": [0, 1, 2, 3]}, "uint8"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2]}, "integer labels"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 10, 3]}, r"\[0, 10\)"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, -1, 2, 3]}, r"\[0, 10\)"),
        ({b"data": np.zeros((4, 3072), np.uint8)}, "lacks the key"),
    ],
)
def test_cifar_malformed_batch(tmp_path, batch, match):
    folder = make_cifar10(tmp_path)
    _dump(folder / "data_batch_2", batch)
    with pytest.raises(DataError, match=match) as err:
        load_cifar10(tmp_path)
    assert "data_batch_2" in str(err.value)
    assert not isinstance(err.value, DatasetNotFoundError)


def test_cifar100_label_out_of_range(tmp_path):
    folder = make_cifar100(tmp_path)
    _dump(folder / "test", {b"data": _cifar_rows(2, 0), b"fine_labels": [0, 100]})
    with pytest.raises(DataError, match=r"test: labels must lie in \[0, 100\)"):
        load_cifar100(tmp_path)


def test_chunked_channel_stats_matches_direct():
    x = torch.randint(0, 256, (37, 3, 5, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    m1, s1 = channel_stats(x, chunk=8)
    xf = x.double() / 255.0
    m2 = xf.mean(dim=(0, 2, 3))
    s2 = xf.permute(1, 0, 2, 3).reshape(3, -1).std(dim=1)
    assert np.allclose(m1, m2.numpy(), atol=1e-12) and np.allclose(s1, s2.numpy(), atol=1e-12)


# ------------------------------------------------------------------------------------ SVHN


def make_svhn(root: Path, n: int = 6, labels=None, name: str = "train_32x32.mat", x=None) -> np.ndarray:
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    if x is None:
        x = np.random.default_rng(len(name) + n).integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    if labels is None:
        labels = [(k % 10) + 1 for k in range(n)]  # 1..10, 10 = digit 0
    savemat(root / name, {"X": x, "y": np.asarray(labels, dtype=np.uint8).reshape(-1, 1)})
    return x


def test_svhn_shapes_label_mapping_and_pixel_layout(tmp_path):
    x = make_svhn(tmp_path, n=12)
    x[3, 20, 1, 4] = 250  # h=3, w=20, c=1 (green), image 4
    make_svhn(tmp_path, n=12, x=x)
    make_svhn(tmp_path, n=5, labels=[10, 10, 1, 9, 5], name="test_32x32.mat")
    b = load_svhn(tmp_path)
    assert b.train.images.shape == (12, 3, 32, 32) and b.train.images.dtype == torch.uint8
    assert b.train.images.is_contiguous()
    assert b.train.images[4, 1, 3, 20] == 250
    assert torch.equal(b.train.images[4], torch.from_numpy(x[:, :, :, 4]).permute(2, 0, 1))
    assert b.test.targets.tolist() == [0, 0, 1, 9, 5]  # 10 -> 0
    assert b.train.targets.tolist() == [(k % 10) + 1 if k % 10 != 9 else 0 for k in range(12)]
    assert b.classes == [str(d) for d in range(10)] and b.num_classes == 10 and b.name == "svhn"


def test_svhn_extra_option(tmp_path):
    make_svhn(tmp_path, n=4)
    make_svhn(tmp_path, n=3, name="test_32x32.mat")
    assert len(load_svhn(tmp_path).train) == 4
    with pytest.raises(DatasetNotFoundError, match="extra_32x32.mat"):
        load_svhn(tmp_path, use_extra=True)
    make_svhn(tmp_path, n=7, name="extra_32x32.mat")
    b = load_data("svhn", str(tmp_path), use_extra=True)
    assert len(b.train) == 11 and len(b.test) == 3


def test_svhn_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nope.*train_32x32.mat"):
        load_svhn(tmp_path / "nope")
    make_svhn(tmp_path, n=4)
    with pytest.raises(DatasetNotFoundError, match="test_32x32.mat does not exist"):
        load_svhn(tmp_path)
    (tmp_path / "test_32x32.mat").write_bytes(b"garbage, not a mat file")
    with pytest.raises(DataError, match="test_32x32.mat is not a readable .mat"):
        load_svhn(tmp_path)
    make_svhn(tmp_path, n=3, name="test_32x32.mat", labels=[1, 11, 2])
    with pytest.raises(DataError, match="test_32x32.mat: labels must lie in 1..10"):
        load_svhn(tmp_path)
    make_svhn(tmp_path, n=3, name="test_32x32.mat", x=np.zeros((3, 32, 32, 3), np.uint8))
    with pytest.raises(DataError, match=r"'X' must have shape \(32, 32, 3, N\)"):
        load_svhn(tmp_path)
    make_svhn(tmp_path, n=3, name="test_32x32.mat", labels=[1, 2])
    with pytest.raises(DataError, match="'y' must hold 3"):
        load_svhn(tmp_path)


# ------------------------------------------------------------------------------- ImageFolder


def _write_image(path: Path, value: int, size=(7, 5), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "RGB":
        array = np.zeros((size[1], size[0], 3), np.uint8)
        array[..., 0] = value
        array[..., 1] = 255 - value
        array[0, 0] = (1, 2, 3)
        Image.fromarray(array).save(path)
    else:
        Image.fromarray(np.full((size[1], size[0]), value, np.uint8), mode="L").save(path)


def make_tree(root: Path, split: str, counts: dict[str, int], ext: str = ".png") -> None:
    for c, k in counts.items():
        for j in range(k):
            _write_image(root / split / c / f"img{j}{ext}", value=10 * j)


def test_imagefolder_generic_tree(tmp_path):
    make_tree(tmp_path, "train", {"cat": 3, "ant": 2})
    make_tree(tmp_path, "val", {"cat": 1, "ant": 2})
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    b = load_imagefolder(tmp_path, image_size=16)
    assert b.classes == ["ant", "cat"]
    assert b.train.targets.tolist() == [0, 0, 1, 1, 1] and b.test.targets.tolist() == [0, 0, 1]
    assert isinstance(b.train, ImageFileDataset) and len(b.train.samples) == 5
    assert b.train.samples[2].endswith("cat/img0.png")
    assert (b.image_size, b.extra["resize"], b.mean) == (16, round(16 * 256 / 224), IMAGENET_MEAN)
    x, y, i = b.train[3]
    assert x.dtype == torch.uint8 and x.shape == (3, 5, 7) and (y, i) == (1, 3)
    assert x[:, 0, 0].tolist() == [1, 2, 3] and x[0, 2, 3] == 10 and x[1, 2, 3] == 245
    # the documented transform contract: resize then centre-crop to image_size, batches stack
    t = build_transform(image_size=b.image_size, mean=b.mean, std=b.std, weak="rrc-flip",
                        resize=b.extra["resize"])
    view = b.train.with_transform(t)
    assert view.samples is b.train.samples and view.targets is b.train.targets
    assert view[0][0].shape == (3, 16, 16) and view[0][0].dtype == torch.float32
    assert b.train.transform is None


def test_imagefolder_uses_test_dir_grey_jpeg_to_rgb(tmp_path):
    _write_image(tmp_path / "train" / "a" / "x.jpg", 128, mode="L")
    _write_image(tmp_path / "test" / "a" / "y.JPEG", 60, mode="L")
    b = load_imagefolder(tmp_path, image_size=8)
    x = b.test.load_image(0)
    assert x.shape == (3, 5, 7) and x.dtype == torch.uint8
    assert abs(int(x[0, 2, 2]) - 60) <= 2 and torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="missing.*expected .*train/<class>/<image>"):
        load_imagefolder(tmp_path / "missing")
    make_tree(tmp_path, "train", {"a": 1, "b": 1})
    with pytest.raises(DatasetNotFoundError, match="test split not found at .*test: expected"):
        load_imagefolder(tmp_path)
    make_tree(tmp_path, "val", {"a": 1, "zebra": 1})
    with pytest.raises(DataError, match="absent from the training split.*zebra"):
        load_imagefolder(tmp_path)
    (tmp_path / "val" / "zebra" / "img0.png").unlink()
    (tmp_path / "val" / "zebra").rmdir()
    (tmp_path / "train" / "c").mkdir()
    with pytest.raises(DataError, match=r"class folder .*train/c holds no images"):
        load_imagefolder(tmp_path)
    (tmp_path / "train" / "c").rmdir()
    load_imagefolder(tmp_path)  # now valid
    with pytest.raises(ConfigError, match="image_size"):
        load_imagefolder(tmp_path, image_size=0)


def test_corrupt_image_raises_data_error_with_path(tmp_path):
    make_tree(tmp_path, "train", {"a": 1})
    make_tree(tmp_path, "val", {"a": 1})
    bad = tmp_path / "train" / "a" / "img0.png"
    bad.write_bytes(b"\x89PNG not really")
    b = load_imagefolder(tmp_path)
    with pytest.raises(DataError, match="cannot decode image .*img0.png"):
        b.train[0]


def test_imagenet_layout(tmp_path):
    make_tree(tmp_path, "train", {"n02": 2, "n01": 1}, ext=".JPEG")
    make_tree(tmp_path, "val", {"n01": 1, "n02": 1}, ext=".JPEG")
    b = load_data("imagenet", str(tmp_path))
    assert b.classes == ["n01", "n02"] and b.image_size == 224 and b.extra["resize"] == 256
    assert b.name == "imagenet" and b.train.targets.tolist() == [0, 1, 1]
    flat = tmp_path / "flat"
    make_tree(flat, "train", {"n01": 1})
    _write_image(flat / "val" / "ILSVRC2012_val_00000001.JPEG", 3)
    with pytest.raises(DataError, match="valprep"):
        load_imagenet(flat)


def make_tiny(root: Path, wnids=("n09", "n01", "n05"), per_class: int = 2) -> list[tuple[str, str]]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for w in wnids:
        for j in range(per_class):
            _write_image(root / "train" / w / "images" / f"{w}_{j}.JPEG", 20 * j, size=(8, 8))
        (root / "train" / w / f"{w}_boxes.txt").write_text("")
    annotations = [("val_0.JPEG", "n05"), ("val_1.JPEG", "n09"), ("val_2.JPEG", "n01"), ("val_3.JPEG", "n05")]
    for k, (f, _) in enumerate(annotations):
        _write_image(root / "val" / "images" / f, 50 + k, size=(8, 8))
    (root / "val" / "val_annotations.txt").write_text(
        "".join(f"{f}\t{w}\t0\t0\t63\t63\n" for f, w in annotations)
    )
    return annotations


def test_tinyimagenet_official_layout(tmp_path):
    make_tiny(tmp_path)
    b = load_tinyimagenet(tmp_path)
    assert b.classes == ["n01", "n05", "n09"] and b.num_classes == 3
    assert (b.image_size, b.extra["resize"]) == (64, 64)
    assert len(b.train) == 6 and b.train.targets.tolist() == [0, 0, 1, 1, 2, 2]
    assert all("/images/" in s for s in b.train.samples)
    names = [Path(s).name for s in b.test.samples]
    assert names == ["val_0.JPEG", "val_1.JPEG", "val_2.JPEG", "val_3.JPEG"]
    assert b.test.targets.tolist() == [1, 2, 0, 1]  # n05, n09, n01, n05
    assert b.test.load_image(2).shape == (3, 8, 8)


def test_tinyimagenet_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="tiny.*val_annotations.txt"):
        load_tinyimagenet(tmp_path / "tiny")
    make_tiny(tmp_path)
    ann = tmp_path / "val" / "val_annotations.txt"
    good = ann.read_text()
    ann.write_text(good + "val_9.JPEG\tn01\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match="val_9.JPEG, which does not exist"):
        load_tinyimagenet(tmp_path)
    ann.write_text(good + "val_0.JPEG\tn77\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match="n77.*not in wnids.txt"):
        load_tinyimagenet(tmp_path)
    ann.write_text("val_0.JPEG n05 0 0 1 1\n")
    with pytest.raises(DataError, match="line 1 is not 'filename<TAB>wnid"):
        load_tinyimagenet(tmp_path)
    ann.unlink()
    with pytest.raises(DatasetNotFoundError, match="val_annotations.txt does not exist"):
        load_tinyimagenet(tmp_path)


def make_caltech(root: Path, sizes: dict[str, int]) -> Path:
    folder = root / "256_ObjectCategories"
    for d, k in sizes.items():
        (folder / d).mkdir(parents=True)
        for j in range(k):
            _write_image(folder / d / f"{d[:3]}_{j:04d}.jpg", j % 256, size=(4, 4))
    return folder


def test_caltech256_split(tmp_path):
    sizes = {"001.ak47": 9, "002.american-flag": 7, "003.backpack": 12, "257.clutter": 8}
    folder = make_caltech(tmp_path, sizes)
    (folder / "002.american-flag" / "RENAME2").write_text("stray file in the real archive")
    b = load_caltech256(tmp_path, train_per_class=5, seed=3)
    assert b.classes == ["ak47", "american-flag", "backpack"] and b.num_classes == 3
    assert torch.bincount(b.train.targets).tolist() == [5, 5, 5]
    assert torch.bincount(b.test.targets).tolist() == [4, 2, 7]
    assert b.extra["test_class_counts"] == [4, 2, 7]
    train, test = set(b.train.samples), set(b.test.samples)
    assert not train & test and len(train | test) == 9 + 7 + 12
    for path, label in zip(b.train.samples + b.test.samples, b.train.targets.tolist() + b.test.targets.tolist()):
        assert Path(path).parent.name == list(sizes)[label]
    again = load_data("caltech256", str(folder), train_per_class=5, seed=3)
    assert again.train.samples == b.train.samples and again.test.samples == b.test.samples
    other = load_caltech256(tmp_path, train_per_class=5, seed=4)
    assert other.train.samples != b.train.samples
    with_clutter = load_caltech256(tmp_path, train_per_class=5, include_clutter=True)
    assert with_clutter.classes[-1] == "clutter" and with_clutter.num_classes == 4
    # 60 per class by default, the paper's split
    big = make_caltech(tmp_path / "big", {"001.a": 61, "002.b": 64})
    d = load_caltech256(big)
    assert torch.bincount(d.train.targets).tolist() == [60, 60] and torch.bincount(d.test.targets).tolist() == [1, 4]
    assert d.image_size == 224 and d.extra["resize"] == 256


def test_caltech256_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="absent.*256_ObjectCategories/<NNN.name>"):
        load_caltech256(tmp_path / "absent")
    with pytest.raises(DatasetNotFoundError, match="no <NNN.name> class folders"):
        load_caltech256(tmp_path)
    make_caltech(tmp_path, {"001.a": 3, "002.b": 6})
    with pytest.raises(DataError, match=r"001.a holds 3 images; need more than train_per_class=5"):
        load_caltech256(tmp_path, train_per_class=5)
    (tmp_path / "256_ObjectCategories" / "003.empty").mkdir()
    with pytest.raises(DataError, match="003.empty holds 0 images"):
        load_caltech256(tmp_path, train_per_class=2)
    with pytest.raises(ConfigError, match="train_per_class"):
        load_caltech256(tmp_path, train_per_class=0)


def test_every_registered_name_resolves():
    import importlib

    for name, target in DATASETS.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name


def test_load_data_passes_sizes_to_imagefolder_loaders_only(tmp_path):
    make_tree(tmp_path, "train", {"cat": 2, "ant": 2})
    make_tree(tmp_path, "val", {"cat": 1, "ant": 1})
    b = load_data("imagefolder", str(tmp_path), image_size=16, resize=20)
    assert (b.image_size, b.extra["resize"]) == (16, 20)
    assert load_data("imagefolder", str(tmp_path)).image_size == 224  # the loader's default
    assert load_data("digits", image_size=16, resize=20).image_size == 8  # fixed native size: ignored
