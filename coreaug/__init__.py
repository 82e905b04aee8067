"""coreaug: train faster with augmented coresets (Liu & Mirzasoleiman, NeurIPS 2022).

The public API (see :mod:`coreaug.api`) is imported lazily, so ``import coreaug`` stays cheap for
the CLI: ``coreaug.AugmentedCoreset``, ``coreaug.select_coreset``, ``coreaug.weighted_loss``,
``coreaug.DictItems``, ``coreaug.CoresetSelection``, ``coreaug.REGIMES``.
"""

from typing import Any

from coreaug.errors import CoreaugError

__version__ = "0.1.0"

_API = ("AugmentedCoreset", "CoresetSelection", "DictItems", "EpochLoader", "REGIMES", "select_coreset",
        "weighted_loss")
__all__ = ["CoreaugError", "__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        import coreaug.api

        return getattr(coreaug.api, name)
    raise AttributeError(f"module 'coreaug' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
