"""Shared test settings."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests use tiny tensors: on a shared 2-core machine OpenMP fork/join dominates, so run each
    test with one torch thread (restored afterwards)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` are skipped where no CUDA GPU is available."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


def free_port() -> int:
    """A free TCP port on the loopback interface (for gloo process groups and torchrun)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sharded_selection_worker(rank: int, world: int, port: int, out_dir: str, setup, configs) -> None:
    """One gloo rank: ``select_subset`` for every config on ``setup()``'s data and model."""
    import os

    import torch.distributed as dist

    from coreaug.distributed import DistContext
    from coreaug.train.subsets import select_subset

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        ctx = DistContext(True, rank, world, rank, torch.device("cpu"))
        ds, model = setup()
        results = {name: select_subset(cfg, model, ds, epoch=1, device=torch.device("cpu"), ctx=ctx).to_dict()
                   for name, cfg in configs().items()}
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture
def sharded_selections(tmp_path):
    """``run(setup, configs)``: the sharded selection of every config on 2 gloo ranks (forked: the
    children inherit the imported modules) → one ``{name: SubsetState dict}`` per rank."""
    import torch.multiprocessing as mp

    def run(setup, configs) -> list[dict]:
        mp.start_processes(_sharded_selection_worker, args=(2, free_port(), str(tmp_path), setup, configs),
                           nprocs=2, join=True, start_method="fork")
        return [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    return run
