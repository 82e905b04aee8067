"""Image-file datasets read lazily from disk: generic ImageFolder, ImageNet, TinyImageNet, Caltech256.

Nothing is downloaded and nothing is decoded up front: a dataset holds the list of image paths
(``.samples``) and labels (``.targets``); ``load_image(i)`` decodes file ``i`` with PIL to a
``uint8`` ``(3, H, W)`` RGB tensor (grey, palette or CMYK files are converted to RGB). Images keep
their size on disk, which varies, so **the transform must resize**: every bundle built here stores

* ``bundle.image_size`` — the side of the square network input (224 for ImageNet/Caltech256,
  64 for TinyImageNet), and
* ``bundle.extra["resize"]`` — the shorter side to resize to before a centre crop of
  ``image_size`` (256 for 224, i.e. ``round(image_size * 256 / 224)``; 64 for TinyImageNet whose
  images are all 64×64 already, so it is a no-op guard there).

The training loop passes these on as ``build_transform(image_size=bundle.image_size,
resize=bundle.extra["resize"], ...)`` for every view (train and test) so that batches stack;
``rrc-flip`` weak augmentation then draws its random-resized crop from the resized image.
Normalisation uses the standard ImageNet per-channel mean/std (:data:`IMAGENET_MEAN`,
:data:`IMAGENET_STD`) instead of a scan over all images.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from coreaug.data.base import DataBundle, IndexedDataset, Transform
from coreaug.errors import ConfigError, DataError, DatasetNotFoundError

__all__ = [
    "IMAGE_EXTENSIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageFileDataset",
    "decode_rgb",
    "default_resize",
    "load_caltech256",
    "load_imagefolder",
    "load_imagenet",
    "load_tinyimagenet",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


def default_resize(image_size: int) -> int:
    """Shorter side to resize to before centre-cropping ``image_size`` (the 256→224 convention)."""
    return int(round(image_size * 256 / 224))


def decode_rgb(path: str) -> torch.Tensor:
    """Decode an image file to a ``uint8`` ``(3, H, W)`` RGB tensor (grey, palette, CMYK → RGB).

    Uses PIL, as torchvision's own ``ImageFolder`` does: ``torchvision.io``'s decoders are
    deprecated since torchvision 0.29 (superseded by TorchCodec, not a dependency here).

    Raises:
        DataError: the file is missing or cannot be decoded.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - any failure means a missing or unreadable image
        raise DataError(f"cannot decode image {path} ({type(exc).__name__}: {exc})") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


class ImageFileDataset(IndexedDataset):
    """Images on disk, decoded lazily: ``ds[i] -> (transform(decode(samples[i])), targets[i], i)``.

    Args:
        samples: image file paths.
        targets: integer labels, one per path.
        transform: applied to each decoded ``uint8`` ``(3, H, W)`` image (``None``: raw image;
            the images vary in size, so a batching loader needs a resizing transform).
    """

    def __init__(self, samples: Sequence[str | os.PathLike], targets: torch.Tensor | Sequence[int],
                 transform: Transform | None = None):
        targets = torch.as_tensor(targets, dtype=torch.long)
        if targets.ndim != 1 or targets.shape[0] != len(samples):
            raise DataError(f"targets must have shape ({len(samples)},) to match the samples, got {tuple(targets.shape)}")
        if targets.numel() and int(targets.min()) < 0:
            raise DataError("targets must be non-negative class indices")
        self.samples: list[str] = [str(s) for s in samples]
        self.targets = targets
        self.transform = transform

    def load_image(self, index: int) -> torch.Tensor:
        return decode_rgb(self.samples[index])

    def with_transform(self, transform: Transform | None) -> "ImageFileDataset":
        """Return a view of the same files and labels with another transform."""
        view = object.__new__(ImageFileDataset)
        view.samples, view.targets, view.transform = self.samples, self.targets, transform
        return view

    def with_targets(self, targets: torch.Tensor | Sequence[int]) -> "ImageFileDataset":
        """Return a view with replaced labels (e.g. after label-noise injection)."""
        return ImageFileDataset(self.samples, targets, self.transform)


# ----------------------------------------------------------------------------------- scanning


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _list_images(folder: Path) -> list[str]:
    """Sorted image paths directly inside ``folder`` (by extension; hidden files skipped)."""
    with os.scandir(folder) as it:
        return sorted(e.path for e in it if _is_image(e.name) and e.is_file())


def _subdirs(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def _require_dir(path: Path, what: str, layout: str) -> None:
    if not path.is_dir():
        raise DatasetNotFoundError(f"{what} not found at {path}: {layout}")


def _scan_class_folders(
    split_dir: Path, class_to_idx: dict[str, int] | None, what: str
) -> tuple[list[str], list[int], list[str]]:
    """Scan ``split_dir/<class>/*`` → (paths, labels, class names).

    With ``class_to_idx`` given (a test split), its folders must be known classes; without it
    (a train split), the sorted folder names define the classes. Every class folder must hold
    at least one image.
    """
    names = _subdirs(split_dir)
    if not names:
        raise DataError(f"{what}: {split_dir} holds no class folders (expected {split_dir}/<class>/<image>)")
    if class_to_idx is None:
        class_to_idx = {c: i for i, c in enumerate(names)}
    else:
        unknown = [c for c in names if c not in class_to_idx]
        if unknown:
            raise DataError(f"{what}: {split_dir} has class folders absent from the training split: {unknown[:5]}")
    paths: list[str] = []
    labels: list[int] = []
    for c in names:
        files = _list_images(split_dir / c)
        if not files:
            raise DataError(f"{what}: class folder {split_dir / c} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        paths += files
        labels += [class_to_idx[c]] * len(files)
    return paths, labels, names


def _check_image_size(image_size: int) -> int:
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
        raise ConfigError(f"image_size must be a positive integer, got {image_size!r}")
    return image_size


def _bundle(name: str, train: ImageFileDataset, test: ImageFileDataset, classes: list[str],
            image_size: int, resize: int | None, root: Path, **extra) -> DataBundle:
    return DataBundle(
        name=name,
        train=train,
        test=test,
        num_classes=len(classes),
        in_channels=3,
        image_size=image_size,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        classes=classes,
        extra={"resize": default_resize(image_size) if resize is None else int(resize), "root": str(root), **extra},
    )


# ----------------------------------------------------------------------------------- loaders


def load_imagefolder(
    root: str | Path, *, image_size: int = 224, resize: int | None = None, name: str = "imagefolder"
) -> DataBundle:
    """Load a generic ``root/train/<class>/<image>`` + ``root/val/<class>/<image>`` tree.

    The test split is ``root/val`` if it exists, else ``root/test``. Classes are the sorted
    folder names of ``train/`` (label = position); the test split's folders must be among them.

    Args:
        root: dataset folder.
        image_size: side of the square network input (stored as ``bundle.image_size``).
        resize: shorter side to resize to before centre-cropping ``image_size``
            (``bundle.extra["resize"]``); default ``round(image_size * 256 / 224)``.
        name: the bundle's name.

    Raises:
        DatasetNotFoundError: ``root``, ``root/train`` or both ``root/val`` and ``root/test`` missing.
        DataError: no class folders, an empty class folder, or test classes absent from train.
    """
    image_size = _check_image_size(image_size)
    root = Path(root).expanduser()
    layout = f"expected {root}/train/<class>/<image> and {root}/val/<class>/<image> (or {root}/test/<class>/<image>)"
    _require_dir(root, name, layout)
    _require_dir(root / "train", f"{name} training split", layout)
    test_dir = root / "val" if (root / "val").is_dir() else root / "test"
    _require_dir(test_dir, f"{name} test split", layout)
    paths, labels, classes = _scan_class_folders(root / "train", None, name)
    class_to_idx = {c: i for i, c in enumerate(classes)}
    test_paths, test_labels, _ = _scan_class_folders(test_dir, class_to_idx, name)
    return _bundle(name, ImageFileDataset(paths, labels), ImageFileDataset(test_paths, test_labels),
                   classes, image_size, resize, root)


def load_imagenet(root: str | Path, *, image_size: int = 224, resize: int | None = None) -> DataBundle:
    """Load ImageNet (ILSVRC-2012) from ``root/train/<wnid>/*.JPEG`` and ``root/val/<wnid>/*.JPEG``.

    The validation images must already be sorted into one folder per class (the usual
    ``valprep.sh`` step); classes are the sorted wnids. See :func:`load_imagefolder`.
    """
    root_p = Path(root).expanduser()
    flat_val = root_p / "val"
    if flat_val.is_dir() and not _subdirs(flat_val) and _list_images(flat_val):
        raise DataError(
            f"ImageNet: {flat_val} holds images directly; sort them into {flat_val}/<wnid>/ folders first "
            "(the standard valprep.sh step)"
        )
    return load_imagefolder(root, image_size=image_size, resize=resize, name="imagenet")


def load_tinyimagenet(root: str | Path, *, image_size: int = 64, resize: int | None = None) -> DataBundle:
    """Load Tiny ImageNet (200 classes, 100,000 train / 10,000 val, 64×64) in its official layout.

    Layout: ``root/wnids.txt`` (one wnid a line), ``root/train/<wnid>/images/*.JPEG``,
    ``root/val/images/*.JPEG`` and ``root/val/val_annotations.txt`` (tab-separated: file name,
    wnid, then bounding-box numbers). The labelled val split is the test split (the official
    ``test/`` has no labels and is ignored). Classes are the wnids sorted, as ImageFolder orders
    them. ``resize`` defaults to ``image_size`` (the images are 64×64 already).

    Raises:
        DatasetNotFoundError: ``root`` or one of the listed files/folders is missing.
        DataError: a malformed annotation line, an unknown wnid, an annotated file that does not
            exist, or an empty class folder.
    """
    image_size = _check_image_size(image_size)
    root = Path(root).expanduser()
    layout = (f"expected {root}/wnids.txt, {root}/train/<wnid>/images/*.JPEG, {root}/val/images/*.JPEG and "
              f"{root}/val/val_annotations.txt (the official tiny-imagenet-200 archive, extracted)")
    _require_dir(root, "TinyImageNet", layout)
    for p in (root / "wnids.txt", root / "val" / "val_annotations.txt"):
        if not p.is_file():
            raise DatasetNotFoundError(f"TinyImageNet file missing: {p} does not exist; {layout}")
    for p in (root / "train", root / "val" / "images"):
        _require_dir(p, "TinyImageNet folder", layout)
    wnids = sorted({line.strip() for line in (root / "wnids.txt").read_text().splitlines() if line.strip()})
    if not wnids:
        raise DataError(f"TinyImageNet: {root / 'wnids.txt'} lists no classes")
    class_to_idx = {w: i for i, w in enumerate(wnids)}
    paths: list[str] = []
    labels: list[int] = []
    for w in wnids:
        folder = root / "train" / w / "images"
        _require_dir(folder, f"TinyImageNet class {w} (listed in wnids.txt)", layout)
        files = _list_images(folder)
        if not files:
            raise DataError(f"TinyImageNet: class folder {folder} holds no images")
        paths += files
        labels += [class_to_idx[w]] * len(files)
    val_dir = root / "val" / "images"
    present = set(_list_images(val_dir))
    ann = root / "val" / "val_annotations.txt"
    test_paths: list[str] = []
    test_labels: list[int] = []
    for lineno, line in enumerate(ann.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(f"TinyImageNet: {ann} line {lineno} is not 'filename<TAB>wnid<TAB>...': {line[:80]!r}")
        fname, wnid = fields[0].strip(), fields[1].strip()
        if wnid not in class_to_idx:
            raise DataError(f"TinyImageNet: {ann} line {lineno} names wnid {wnid!r}, which is not in wnids.txt")
        path = str(val_dir / fname)
        if path not in present:
            raise DataError(f"TinyImageNet: {ann} line {lineno} names {path}, which does not exist")
        test_paths.append(path)
        test_labels.append(class_to_idx[wnid])
    if not test_paths:
        raise DataError(f"TinyImageNet: {ann} annotates no images")
    return _bundle("tinyimagenet", ImageFileDataset(paths, labels), ImageFileDataset(test_paths, test_labels),
                   wnids, image_size, image_size if resize is None else resize, root)


def _caltech_class(folder_name: str) -> str | None:
    """``"001.ak47"`` → ``"ak47"``; ``None`` for a folder not named ``<digits>.<name>``."""
    number, dot, name = folder_name.partition(".")
    return name if dot and number.isdigit() and name else None


def load_caltech256(
    root: str | Path,
    *,
    train_per_class: int = 60,
    seed: int = 0,
    include_clutter: bool = False,
    image_size: int = 224,
    resize: int | None = None,
) -> DataBundle:
    """Load Caltech-256 from ``256_ObjectCategories/<NNN.name>/*.jpg`` with a seeded per-class split.

    Each class's files (sorted by name) are shuffled with a generator seeded by ``seed``; the
    first ``train_per_class`` go to train and the rest to test, as the paper's code does (60
    training images per class; it reports class-balanced test accuracy, so the test split is
    unbalanced on purpose — ``bundle.extra["test_class_counts"]`` has the per-class sizes).

    The ``257.clutter`` background class is **dropped by default** (the paper's code trains a
    256-way classifier); ``include_clutter=True`` keeps it as class 257. Class names are the
    folder names without the ``NNN.`` prefix, in folder order.

    Args:
        root: the folder containing ``256_ObjectCategories/``, or that folder itself.
        train_per_class: training images per class; every class must have more than this.
        seed: seed of the split (the same seed gives the same split).
        include_clutter: keep ``257.clutter``.
        image_size, resize: see :func:`load_imagefolder`.

    Raises:
        DatasetNotFoundError: ``root`` (or ``256_ObjectCategories``) missing.
        DataError: no class folders, an empty class, or a class with ≤ ``train_per_class`` images.
    """
    image_size = _check_image_size(image_size)
    if not isinstance(train_per_class, int) or isinstance(train_per_class, bool) or train_per_class < 1:
        raise ConfigError(f"train_per_class must be a positive integer, got {train_per_class!r}")
    root_p = Path(root).expanduser()
    layout = (f"expected {root_p}/256_ObjectCategories/<NNN.name>/*.jpg "
              "(the official 256_ObjectCategories.tar, extracted)")
    _require_dir(root_p, "Caltech256", layout)
    folder = root_p / "256_ObjectCategories" if (root_p / "256_ObjectCategories").is_dir() else root_p
    class_dirs = [d for d in _subdirs(folder) if _caltech_class(d) is not None]
    if not class_dirs:
        raise DatasetNotFoundError(f"Caltech256 not found at {root_p}: no <NNN.name> class folders; {layout}")
    if not include_clutter:
        class_dirs = [d for d in class_dirs if _caltech_class(d) != "clutter"]
    generator = torch.Generator().manual_seed(int(seed))
    paths: list[str] = []
    labels: list[int] = []
    test_paths: list[str] = []
    test_labels: list[int] = []
    test_counts: list[int] = []
    for label, d in enumerate(class_dirs):
        files = _list_images(folder / d)
        if len(files) <= train_per_class:
            raise DataError(
                f"Caltech256: class folder {folder / d} holds {len(files)} images; need more than "
                f"train_per_class={train_per_class}"
            )
        order = torch.randperm(len(files), generator=generator).tolist()
        chosen = [files[i] for i in order]
        paths += chosen[:train_per_class]
        labels += [label] * train_per_class
        rest = sorted(chosen[train_per_class:])
        test_paths += rest
        test_labels += [label] * len(rest)
        test_counts.append(len(rest))
    classes = [str(_caltech_class(d)) for d in class_dirs]
    return _bundle("caltech256", ImageFileDataset(paths, labels), ImageFileDataset(test_paths, test_labels),
                   classes, image_size, resize, folder, train_per_class=train_per_class, split_seed=int(seed),
                   include_clutter=include_clutter, test_class_counts=test_counts)
