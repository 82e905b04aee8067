"""Project exception hierarchy.

Every error a user can cause (bad configuration, bad data, bad input to a selector, a missing
or corrupted file) is raised as a subclass of :class:`CoreaugError` with a one-line, actionable
message. The CLI prints such errors as ``coreaug: error: <message>`` and exits with code 2.
"""

from __future__ import annotations

__all__ = [
    "CoreaugError",
    "ConfigError",
    "DataError",
    "DatasetNotFoundError",
    "InputError",
    "SelectionError",
    "CheckpointError",
    "DeviceError",
    "OutputError",
    "RunFolderBusyError",
    "DivergenceError",
    "first_line",
]


class CoreaugError(ValueError):
    """Base class of all user-facing errors raised by ``coreaug``."""


class ConfigError(CoreaugError):
    """An unknown preset/method/augmentation name or an out-of-range hyper-parameter."""


class DataError(CoreaugError):
    """A dataset exists but is malformed (wrong layout, wrong shapes, inconsistent labels)."""


class DatasetNotFoundError(DataError):
    """A dataset path does not exist or lacks the expected files."""


class InputError(CoreaugError):
    """Bad array input to a public function: wrong shape, NaN/Inf, labels out of range."""


class SelectionError(InputError):
    """Bad input to a subset selector: fraction outside (0, 1], budget too large, empty class."""


class CheckpointError(CoreaugError):
    """A checkpoint is missing, corrupted, or was written by a different configuration."""


class DeviceError(CoreaugError):
    """A requested device is not available (e.g. ``cuda`` on a machine without a GPU)."""


class OutputError(CoreaugError):
    """An output file or folder cannot be written: a file is in the way, no permission, disk full."""


class RunFolderBusyError(CoreaugError):
    """Another live process holds the run folder's lock (see :mod:`coreaug.runlock`)."""


class DivergenceError(CoreaugError):
    """The training loss became NaN or infinite (``allow_nonfinite`` turns this check off)."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (``""`` for an empty one): what a one-line report shows."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
