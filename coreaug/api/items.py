"""A user's dataset as the pipeline sees it: items ``(x, y)`` → ``(x, y, index)``, checked at the edge.

Users bring any map-style dataset. Its items are ``(x, y)`` tuples (torchvision, a
``TensorDataset``), or dicts (Hugging Face ``datasets`` rows) read through :class:`DictItems`, or
anything else read through a callable ``item -> (x, y)``. :class:`IndexedView` appends the item's
position so selections, weights and forgetting statistics follow each example. The project's own
datasets (:class:`coreaug.data.base.IndexedDataset`, items ``(x, y, index)``) pass through untouched,
so ``coreaug train`` sees exactly the data it always did.

Every check here runs once, on the first item or on the label vector, never per batch.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from coreaug.errors import ConfigError, InputError, SelectionError

__all__ = ["DictItems", "IndexedView", "StrongView", "dataset_labels", "check_fraction", "check_head",
           "check_strong_transform"]


@dataclass(frozen=True)
class DictItems:
    """Read dict items: ``item[input_key]`` is ``x``, ``item[label_key]`` is ``y``.

    ``DictItems("pixel_values", "label")`` reads Hugging Face image-classification rows after the
    image processor ran; ``DictItems("image", "label")`` raw rows with a ``transform=``.
    """

    input_key: str = "pixel_values"
    label_key: str = "label"

    def __call__(self, item: Any) -> tuple[Any, Any]:
        if not isinstance(item, dict):
            raise InputError(f"DictItems expects dict items, got {type(item).__name__}")
        missing = [k for k in (self.input_key, self.label_key) if k not in item]
        if missing:
            raise InputError(f"dataset items have no key(s) {missing}; they have {sorted(item)[:8]}: "
                             f"pass items=coreaug.DictItems(input_key=..., label_key=...)")
        return item[self.input_key], item[self.label_key]


def _tuple_items(item: Any) -> tuple[Any, Any]:
    """The default reader: a 2-tuple ``(x, y)``."""
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return item[0], item[1]
    if isinstance(item, dict):
        raise InputError(f"dataset items are dicts (keys {sorted(item)[:8]}), not (x, y): "
                         "pass items=coreaug.DictItems(input_key=..., label_key=...)")
    kind = f"{len(item)}-tuples" if isinstance(item, (tuple, list)) else type(item).__name__
    raise InputError(f"dataset items must be (x, y) pairs, got {kind}: pass items=<callable item -> (x, y)>")


def _label_int(y: Any) -> int:
    if isinstance(y, torch.Tensor):
        if y.numel() != 1 or y.is_floating_point() or y.dtype == torch.bool:
            raise InputError(f"labels must be integer class indices, got a {y.dtype} tensor of shape {tuple(y.shape)}")
        return int(y.item())
    if isinstance(y, bool) or not isinstance(y, numbers.Integral):
        raise InputError(f"labels must be integer class indices, got {type(y).__name__} {y!r}")
    return int(y)


class IndexedView(Dataset):
    """``dataset[i] -> (x, y, i)`` for a dataset of ``(x, y)`` items (or dicts via ``items``).

    Args:
        dataset: any map-style dataset (``__len__`` and ``__getitem__``).
        items: ``None`` (``(x, y)`` tuples), a :class:`DictItems`, or a callable ``item -> (x, y)``.
        transform: applied to each ``x`` after reading (e.g. an HF image processor or a tensor conversion).
    """

    def __init__(self, dataset: Dataset, items: Callable[[Any], tuple[Any, Any]] | None = None,
                 transform: Callable[[Any], Any] | None = None):
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise InputError(f"dataset must be map-style (__len__ and __getitem__), got {type(dataset).__name__}")
        self.dataset, self.read, self.transform = dataset, items or _tuple_items, transform
        self._targets: torch.Tensor | None = None

    @classmethod
    def wrap(cls, dataset: Dataset, *, items: Any = None, transform: Any = None) -> Dataset:
        """``dataset`` itself when it already yields ``(x, y, index)`` (coreaug's own datasets), else a view."""
        from coreaug.data.base import IndexedDataset

        if isinstance(dataset, (IndexedView, StrongView)) and items is None and transform is None:
            return dataset
        if isinstance(dataset, IndexedDataset) and items is None and transform is None:
            return dataset
        return cls(dataset, items, transform)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        x, y = self.read(self.dataset[int(index)])
        if self.transform is not None:
            x = self.transform(x)
        return x, _label_int(y), int(index)

    @property
    def targets(self) -> torch.Tensor:
        """All labels (int64), read once: from ``targets``/``labels`` attributes or a label column
        when the dataset has one, else by reading every item."""
        if self._targets is None:
            self._targets = _read_labels(self)
        return self._targets


class StrongView(Dataset):
    """``base[i]`` with ``strong`` applied to ``x``: the appended strong-augmented copy of item ``i``."""

    def __init__(self, base: Dataset, strong: Callable[[Any], Any]):
        self.base, self.strong = base, strong

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        x, y, i = self.base[index]
        return self.strong(x), y, i

    @property
    def targets(self) -> torch.Tensor:
        return self.base.targets


def _read_labels(view: IndexedView) -> torch.Tensor:
    ds = view.dataset
    for name in ("targets", "labels"):
        col = getattr(ds, name, None)
        if col is not None and not callable(col) and view.read is _tuple_items:
            try:
                t = torch.as_tensor(col)
            except (TypeError, ValueError, RuntimeError):
                continue
            if t.ndim == 1 and t.numel() == len(ds):
                return _check_label_vector(t)
    if isinstance(view.read, DictItems) and hasattr(ds, "column_names") and view.read.label_key in ds.column_names:
        return _check_label_vector(torch.as_tensor(list(ds[view.read.label_key])))  # HF datasets: one column read
    return _check_label_vector(torch.tensor([_label_int(view.read(ds[i])[1]) for i in range(len(ds))],
                                            dtype=torch.long))


def _check_label_vector(t: torch.Tensor) -> torch.Tensor:
    if t.is_floating_point() or t.dtype == torch.bool:
        raise InputError(f"labels must be integer class indices, got dtype {t.dtype}")
    t = t.to(torch.long).flatten()
    if t.numel() and int(t.min()) < 0:
        raise InputError(f"labels must be non-negative class indices, got {int(t.min())}")
    return t


def dataset_labels(view: Dataset, *, num_classes: int | None = None) -> torch.Tensor:
    """The labels of ``view`` as an int64 CPU vector, checked: integers in ``[0, num_classes)``."""
    if len(view) == 0:
        raise InputError("the dataset is empty")
    targets = getattr(view, "targets", None)
    labels = _check_label_vector(torch.as_tensor(targets)) if targets is not None else \
        _read_labels(IndexedView(view))
    if num_classes is not None and int(labels.max()) >= int(num_classes):
        raise InputError(f"labels must lie in [0, {num_classes}), got {int(labels.max())}")
    return labels


def check_fraction(fraction: Any, n: int) -> None:
    """``fraction`` is a float in (0, 1] or an int budget in [1, n] (the selectors' own rule,
    :func:`coreaug.select.base.resolve_total_budget`; per-class lists are not taken here)."""
    from coreaug.select.base import resolve_total_budget

    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
        raise SelectionError(f"fraction must be a float in (0, 1] (or an int budget), got {fraction!r}")
    resolve_total_budget(fraction, n)


def check_head(model: nn.Module, head: nn.Module | None, labels: torch.Tensor, num_classes: int | None = None
               ) -> nn.Module:
    """The classifier layer whose output are the logits, checked: its width must equal ``num_classes``
    (default: ``max(label) + 1``)."""
    from coreaug.models import last_linear

    net = getattr(model, "module", model)
    if head is None:
        try:
            head = last_linear(net)
        except ConfigError:
            raise ConfigError(f"model {type(net).__name__} has no nn.Linear classifier: pass head=<the layer that "
                              "outputs the logits>") from None
    width = getattr(head, "out_features", None)
    if width is None:
        return head
    classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    if int(width) != classes:
        raise InputError(f"the classifier {type(head).__name__} outputs {width} logits but the dataset has "
                         f"{classes} classes: give the model a {classes}-way head (or pass num_classes=)")
    return head


def check_strong_transform(weak: Dataset, strong: Dataset) -> None:
    """The strong view of item 0 has the shape of its weak view (batches must stack). The user's
    transforms run once here with the global RNG states put back afterwards (nothing is drawn)."""
    from coreaug.runtime import preserved_rng

    with preserved_rng():
        x_weak, x_strong = weak[0][0], strong[0][0]
    shape_w, shape_s = getattr(x_weak, "shape", None), getattr(x_strong, "shape", None)
    if shape_w is not None and tuple(shape_w) != tuple(shape_s or ()):
        raise InputError(f"the strong transform changes the input shape {tuple(shape_w)} -> "
                         f"{None if shape_s is None else tuple(shape_s)}; it must return inputs of the same shape")
