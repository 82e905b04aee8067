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


#: Default inference batch of the proxy pass and evaluation when ``eval_batch_size`` is ``"auto"``.
#: CPU: measured on ResNet-20 / 32×32 with one thread (benchmarks/results/proxy_pass.md): batches of
#: 64–128 run inference about twice as fast as 512 (cache-resident activations), and 64 stays the
#: fastest when other processes share the caches (128 was 15–30% slower at load ≈ 4–8 on 2 cores,
#: equal when idle). CUDA: large enough to
#: fill a GPU with small images, small enough for ImageNet-size ResNets in bf16 (not measured here).
AUTO_EVAL_BATCH = {"cpu": 64, "cuda": 1024}


def available_cpus() -> int:
    """CPU cores this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` where absent).

    Containers and batch schedulers restrict affinity; ``os.cpu_count()`` reports the whole host.
    """
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # non-Linux
        return max(1, os.cpu_count() or 1)


def default_threads(local_world_size: int = 1) -> int:
    """Intra-op CPU threads for one process: the cores it may use, shared evenly between the
    ``local_world_size`` processes of one machine (torchrun's ``LOCAL_WORLD_SIZE``)."""
    return max(1, available_cpus() // max(1, int(local_world_size)))


def resolve_eval_batch_size(spec: int | str | None, device: torch.device) -> int:
    """``"auto"``/``None`` → :data:`AUTO_EVAL_BATCH` for the device type; an int is returned as is."""
    if spec is None or spec == "auto":
        return AUTO_EVAL_BATCH.get(device.type, AUTO_EVAL_BATCH["cpu"])
    return int(spec)


def resolve_num_workers(spec: int | str | None, device: torch.device) -> int:
    """``"auto"``/``None`` → 0 on CPU (the main process is faster for in-memory data and leaves the
    cores to the model), ``min(8, available cores)`` on CUDA; an int is returned as is."""
    if spec is None or spec == "auto":
        return 0 if device.type != "cuda" else min(8, available_cpus())
    return int(spec)
