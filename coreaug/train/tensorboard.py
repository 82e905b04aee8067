"""Optional TensorBoard streaming of a run (``coreaug train --tensorboard DIR``; extra ``[tb]``).

Per epoch: every numeric metrics column under ``metrics/<column>`` (step = epoch); per diagnostic:
every numeric diagnostics column under ``diagnostics/<column>`` and the probe spectra as histograms
(step = the diagnosed epoch; 0 = initialisation). Uses ``torch.utils.tensorboard``, which needs the
``tensorboard`` package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coreaug.errors import ConfigError
from coreaug.io import finite_scalar

__all__ = ["INSTALL_HINT", "TensorBoardLogger", "check_tensorboard_dir", "require_tensorboard"]

INSTALL_HINT = 'pip install -e ".[tb]"'


def require_tensorboard():
    """``torch.utils.tensorboard.SummaryWriter``, or a one-line :class:`ConfigError` saying how to install it."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(f"--tensorboard needs the tensorboard package; install it with: {INSTALL_HINT}") from None
    return SummaryWriter


def check_tensorboard_dir(log_dir: str | Path) -> Path:
    """Check, creating nothing, that TensorBoard can log to ``log_dir`` and that the package is installed.

    Raises a one-line :class:`ConfigError` (package missing) or :class:`~coreaug.errors.OutputError` (a file
    in the way, e.g. ``/dev/null`` or a path under a file, or no permission); call it before a run folder
    is touched, so a bad ``--tensorboard`` costs nothing.
    """
    from coreaug.io import check_output_dir

    require_tensorboard()
    return check_output_dir(log_dir, "TensorBoard folder")


class TensorBoardLogger:
    """A ``SummaryWriter`` on ``log_dir`` with one method per kind of row."""

    def __init__(self, log_dir: str | Path):
        writer_cls = require_tensorboard()
        self.writer = writer_cls(log_dir=str(log_dir))

    def log_epoch(self, row: dict[str, Any]) -> None:
        """One metrics row (``coreaug.train.observers.METRIC_FIELDS``), at step ``row["epoch"]``."""
        step = int(row["epoch"])
        for k, v in row.items():
            val = finite_scalar(v)
            if k != "epoch" and val is not None:
                self.writer.add_scalar(f"metrics/{k}", val, step)
        self.writer.flush()

    def log_diagnostics(self, row: dict[str, Any]) -> None:
        """One diagnostics row (``coreaug.train.diagnostics``), at step ``row["epoch"]``."""
        import torch

        step = int(row["epoch"])
        for k, v in row.items():
            val = finite_scalar(v)
            if k not in ("epoch", "probe_size", "num_params") and val is not None:
                self.writer.add_scalar(f"diagnostics/{k}", val, step)
        for k in ("sigma", "sigma_appended", "relative_increase"):
            vals = [v for x in (row.get(k) or []) if (v := finite_scalar(x)) is not None]
            if vals:
                self.writer.add_histogram(f"diagnostics/{k}", torch.tensor(vals), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
