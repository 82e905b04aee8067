"""The public API under DDP: two gloo ranks (forked) agree on the selection and its weights, each
gets a disjoint shard of the epoch, and together they cover it exactly (the single-process epoch)."""

from __future__ import annotations

import os

import torch

from conftest import free_port
from test_api import _data, _flip, _model


def _rank(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    import coreaug

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        cs = coreaug.AugmentedCoreset(_data(n=120), strong=_flip, selector="coreset", fraction=0.2,
                                      reselect_every=1, regime="subset-only", seed=3, proxy_pool=0.5)
        seen = {}
        for epoch in range(2):
            loader = cs.loader(_model(), epoch, batch_size=8, with_index=True)  # distributed: detected
            seen[epoch] = {"items": [(int(i), int(v)) for _, _, _, idx, view in loader for i, v in zip(idx, view)],
                           "indices": cs.indices.clone(), "weights": cs.weights.clone(), "len": len(loader)}
        torch.save(seen, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_ranks_agree_and_split_the_epoch(tmp_path):
    import torch.multiprocessing as mp

    import coreaug

    mp.start_processes(_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True, start_method="fork")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    single = coreaug.AugmentedCoreset(_data(n=120), strong=_flip, selector="coreset", fraction=0.2,
                                      reselect_every=1, regime="subset-only", seed=3, proxy_pool=0.5)
    for epoch in range(2):
        a, b = r0[epoch], r1[epoch]
        single.select(_model(), epoch)
        for part in (a, b):  # every rank holds the single-process selection
            assert torch.equal(part["indices"], single.indices) and torch.equal(part["weights"], single.weights)
        assert not set(a["items"]) & set(b["items"])  # disjoint shards (48 items: no padding)
        plan = single.plan(epoch)
        whole = {(int(i), 0) for i in plan.main_indices} | {(int(i), 1) for i in plan.aug_indices}
        assert set(a["items"]) | set(b["items"]) == whole
        assert a["len"] == b["len"] == single.steps_per_epoch(8, world_size=2)


def _prune_rank(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    import coreaug

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        cs = coreaug.AugmentedCoreset(_data(n=40), regime="full", pruning="infobatch", epochs=4, seed=1)
        mine = torch.arange(rank, 40, world)  # each rank saw its own shard
        cs.record(mine, losses=mine.float() / 40 + rank)
        cs.sync()  # a collective: every rank's losses, in rank order
        keep, w = cs.pruning.main_set(1, 4)
        torch.save({"latest": cs.pruning.latest(), "keep": keep, "w": w}, os.path.join(out_dir, f"p{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_pruning_scores_are_the_same_on_every_rank(tmp_path):
    import torch.multiprocessing as mp

    from coreaug.api.pruning import InfoBatch

    mp.start_processes(_prune_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True, start_method="fork")
    a, b = (torch.load(tmp_path / f"p{r}.pt") for r in range(2))
    ref = InfoBatch(40, seed=1)
    for rank in range(2):
        idx = torch.arange(rank, 40, 2)
        ref.record(idx, idx.float() / 40 + rank)
    assert torch.equal(a["latest"], ref.latest()) and torch.equal(b["latest"], ref.latest())
    assert torch.equal(a["keep"], b["keep"]) and torch.equal(a["w"], b["w"])
    assert torch.equal(a["keep"], ref.main_set(1, 4)[0])
