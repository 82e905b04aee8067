"""Accuracy at matched cost and Pareto fronts (coreaug.report.matched_cost) against brute force and by hand."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from coreaug.report.matched_cost import matched_cost_frame, pareto_front


def test_pareto_front_equals_brute_force():
    rng = random.Random(0)
    for _ in range(50):
        cost = [rng.choice([1.0, 2.0, 3.0, rng.random() * 4]) for _ in range(9)]
        acc = [rng.choice([0.5, 0.7, rng.random()]) for _ in range(9)]
        front = pareto_front(cost, acc)

        def dominated(i):
            return any((cost[j] <= cost[i] and acc[j] > acc[i]) or (cost[j] < cost[i] and acc[j] >= acc[i])
                       for j in range(9))

        brute = {i for i in range(9) if not dominated(i)}
        # ties (same cost and accuracy) keep one representative
        assert {(cost[i], acc[i]) for i in front} == {(cost[i], acc[i]) for i in brute}
        assert [cost[i] for i in front] == sorted(cost[i] for i in front)


def _run(method, seed, wall_per_epoch, accs, selector=None, fraction=1.0, passes_per_epoch=100, pruning=None):
    epochs = len(accs)
    metrics = pd.DataFrame({
        "epoch": range(1, epochs + 1), "test_acc": accs,
        "wall_clock": np.cumsum([wall_per_epoch] * epochs),
        "fwd_train": [passes_per_epoch // 2] * epochs, "bwd_train": [passes_per_epoch // 2] * epochs,
        "fwd_proxy": [0] * epochs,
    })
    results = {"method": method, "selector": selector, "fraction": fraction, "seed": seed, "final_test_acc": accs[-1],
               "wall_clock_total": wall_per_epoch * epochs, "example_passes_total": passes_per_epoch * epochs}
    config = {"pruning": pruning or "none", "prune_ratio": 0.5}
    return {"dir": f"{method}-{selector}-{seed}", "results": results, "metrics": metrics, "config": config}


def test_reference_accuracy_is_its_learning_curve_at_the_same_cost():
    runs = [
        _run("full-aug", 0, 10.0, [0.5, 0.7, 0.8, 0.9]),  # costs 10, 20, 30, 40
        _run("full-aug", 1, 10.0, [0.5, 0.7, 0.8, 0.9]),
        _run("subset-only", 0, 2.5, [0.6, 0.75], "coreset", 0.1),  # total wall 5 → half of epoch 1
        _run("subset-only", 1, 2.5, [0.6, 0.77], "coreset", 0.1),
        _run("subset-only", 0, 2.5, [0.5, 0.6], "random", 0.1),
        _run("subset-only", 0, 30.0, [0.6, 0.95], "random", 0.9),  # costs more than full-aug ever spent
    ]
    frame = matched_cost_frame(runs).set_index("label")
    core = frame.loc["subset-only coreset 10%"]
    assert core["acc_mean"] == pytest.approx(0.76)
    assert core["acc_ci"] == pytest.approx(12.7062 * 0.01 * 2**0.5 / 2**0.5, rel=1e-3)  # t_{.975,1}·s/√n
    # full-aug's mean curve at wall 5: between (0, 0.5) and (10, 0.5) → 0.5; at 25 it would be 0.75
    assert core["full-aug_acc_at_wall"] == pytest.approx(0.5) and not core["full-aug_acc_at_wall_beyond"]
    # the best random configuration at wall 5: random 10% ends at 5 with 0.6; random 90% starts at 30 (its first epoch)
    assert core["random_acc_at_wall"] == pytest.approx(0.6) and core["random_acc_at_wall_ref"] == "subset-only random 10%"
    big = frame.loc["subset-only random 90%"]
    assert big["full-aug_acc_at_wall"] == pytest.approx(0.9) and big["full-aug_acc_at_wall_beyond"]
    # Pareto front of the means by wall: coreset 10% (5 s, 0.76) dominates random 10% (5 s, 0.6)
    assert bool(core["front_wall"]) and not bool(frame.loc["subset-only random 10%"]["front_wall"])
    fa = frame.loc["full-aug"]
    assert fa["full-aug_acc_at_wall"] is None or np.isnan(fa["full-aug_acc_at_wall"])  # not against itself


def test_runs_without_cost_are_left_out():
    run = _run("full", 0, 1.0, [0.5])
    del run["results"]["example_passes_total"]
    assert matched_cost_frame([run]).empty
