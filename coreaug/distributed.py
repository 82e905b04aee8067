"""DistributedDataParallel plumbing for ``torchrun``: detect, initialise, broadcast, clean up.

Under ``torchrun --nproc_per_node K`` each process sees ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``.
The process group uses NCCL on CUDA and gloo on CPU. Selection is shared: every rank runs the proxy
pass on its strided shard, the shards are gathered (:func:`gather_strided`), classes are split
across ranks for the greedy and the results all-gathered, so every rank holds the same (S, γ)
(:mod:`coreaug.train.subsets`). Only rank 0 writes files (:attr:`DistContext.is_main`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from coreaug.device import resolve_device
from coreaug.errors import ConfigError


@dataclass
class DistContext:
    """Where this process stands: rank, world size and its device."""

    enabled: bool
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False  # True if we created the process group (and must destroy it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_spec: str = "auto") -> DistContext:
    """Initialise the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1), else a no-op context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(False, 0, 1, 0, resolve_device(device_spec))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec)
    if device.type == "cuda":
        if torch.cuda.device_count() < 1:
            raise ConfigError("DDP on CUDA needs at least one visible GPU per process")
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
        owns = True
    return DistContext(True, dist.get_rank(), dist.get_world_size(), local_rank, device, owns)


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Send ``obj`` from rank 0 to every rank (identity when not distributed)."""
    if not ctx.enabled:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0, device=ctx.device if ctx.device.type == "cuda" else None)
    return box[0]


def all_reduce_sum(values: list[float], ctx: DistContext) -> list[float]:
    """Sum a short list of floats over ranks."""
    if not ctx.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_gather_object(obj: Any, ctx: DistContext) -> list[Any]:
    """Gather one object from every rank (``[obj]`` when not distributed)."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def gather_strided(local: torch.Tensor, total: int, ctx: DistContext) -> torch.Tensor:
    """Undo a strided shard: rank ``r`` holds rows ``r, r + W, r + 2W, …`` of a ``total``-row
    tensor; return the whole tensor on every rank (one padded ``all_gather`` of tensors, on
    ``local``'s device — CUDA tensors under NCCL, CPU tensors under gloo)."""
    if not ctx.enabled:
        return local
    world = ctx.world_size
    rows = -(-total // world)
    if local.shape[0] != len(range(ctx.rank, total, world)):
        raise ValueError(f"rank {ctx.rank} holds {local.shape[0]} rows of a strided {total}-row shard")
    padded = local.new_zeros((rows, *local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    out = local.new_empty((total, *local.shape[1:]))
    for r, part in enumerate(parts):
        out[r::world] = part[: len(range(r, total, world))]
    return out


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def cleanup(ctx: DistContext) -> None:
    """Destroy the process group if this context created it."""
    if ctx.enabled and ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()
