"""coreaug: train faster with augmented coresets (Liu & Mirzasoleiman, NeurIPS 2022)."""

from coreaug.errors import CoreaugError

__version__ = "0.1.0"
__all__ = ["CoreaugError", "__version__"]
