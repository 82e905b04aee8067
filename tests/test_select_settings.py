"""Facility location with the optimiser and the engine given apart (coreaug.select.settings) equals
the flat keywords it stands for; the greedy result is typed; Selection.positions names what indices are."""

from __future__ import annotations

import pytest
import torch

from coreaug.errors import SelectionError
from coreaug.select import EngineSettings, GreedyResult, facility_location, greedy_facility_location


def _data(n=240, d=5, classes=3):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g), torch.arange(n) % classes


@pytest.mark.parametrize("algorithm, engine, greedy, flat", [
    ("exact", None, "auto", {}),
    ("exact", EngineSettings(step="sweep", threads=1), "sweep", {"threads": 1}),
    ("exact", EngineSettings(step="incremental", memory_budget=1 << 20), "incremental", {"memory_budget": 1 << 20}),
    ("lazy", EngineSettings(lazy_batch=4), "lazy", {"lazy_batch": 4}),
    ("naive", None, "naive", {}),
    ("stochastic", None, "stochastic", {}),
    ("exact", EngineSettings(dtype=torch.float64), "auto", {"dtype": torch.float64}),
])
def test_algorithm_and_engine_equal_the_flat_keywords(algorithm, engine, greedy, flat):
    x, y = _data()
    new = facility_location(x, y, 0.1, algorithm=algorithm, engine=engine, seed=3)
    old = facility_location(x, y, 0.1, greedy=greedy, seed=3, **flat)
    assert new == old and new.info["objective"] == old.info["objective"]


def test_bad_combinations_are_one_line():
    x, y = _data()
    with pytest.raises(SelectionError, match="either greedy= or algorithm="):
        facility_location(x, y, 0.1, greedy="lazy", algorithm="lazy")
    with pytest.raises(SelectionError, match="applies to algorithm='exact'"):
        facility_location(x, y, 0.1, algorithm="lazy", engine=EngineSettings(step="sweep"))
    with pytest.raises(SelectionError, match="unknown algorithm 'greedy'"):
        facility_location(x, y, 0.1, algorithm="greedy")
    with pytest.raises(SelectionError, match="unknown engine step"):
        EngineSettings(step="fast")


def test_greedy_result_is_typed_and_still_reads_like_the_old_dict():
    x, _ = _data(n=60)
    for greedy in ("incremental", "lazy"):
        res = greedy_facility_location(x, 6, greedy=greedy)
        assert isinstance(res, GreedyResult)
        assert torch.equal(res.order, res["order"]) and res.objective == res["objective"]
        assert int(res.counts.sum()) == 60 and set(res.keys()) >= {"order", "counts", "objective"}


def test_selection_positions_are_its_indices():
    x, y = _data()
    sel = facility_location(x, y, 0.1)
    assert sel.positions is sel.indices
