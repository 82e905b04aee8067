"""Device selection in one place: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N``."""

from __future__ import annotations

import torch

from coreaug.errors import DeviceError


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """Return the :class:`torch.device` for ``spec``.

    ``"auto"`` (or ``None``) picks CUDA when available, else CPU. Asking for CUDA on a machine
    without it raises :class:`~coreaug.errors.DeviceError` instead of failing later.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    if spec is None or spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise DeviceError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec!r} requested but CUDA is not available; use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {spec!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif device.type != "cpu":
        raise DeviceError(f"unsupported device {spec!r}; use auto, cpu, cuda or cuda:N")
    return device
