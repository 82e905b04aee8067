"""``coreaug sweep``: grid expansion, dry-run, skip completed / resume interrupted, one-line failures,
the stats report (t intervals, Welch test) against scipy / closed forms, bad input, paper grid without data."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from scipy import stats

from coreaug.cli import main
from coreaug.errors import ConfigError
from coreaug.paper_numbers import PAPER_NUMBERS, paper_cell
from coreaug.report import load_run, stats_summary_frame, t_interval, welch_test
from coreaug.sweep import build_grid, expand_grid, known_selectors, parse_seeds, plan_sweep, run_name, run_sweep
from coreaug.train import resolve_config, train

TINY = {"model": "mlp", "epochs": 2, "batch_size": 64, "milestones": [], "device": "cpu",
        "strong_aug": "gaussian-noise", "threads": 1}
TINY_FLAGS = ["--preset", "digits-quick", "--model", "mlp", "--epochs", "2", "--batch-size", "64", "--milestones", "",
              "--strong-aug", "gaussian-noise", "--device", "cpu", "--threads", "1"]


# ------------------------------------------------------------------------------- grid expansion
def test_grid_expansion_counts_dedup_and_names():
    spec = build_grid(preset="digits-quick", methods="full,full-aug,subset-only,random+aug-subset,full-aug",
                      selectors="coreset,random,maxloss,random", fractions="0.1,0.3,0.1", seeds="0-4")
    points = expand_grid(spec)
    # full and full-aug once per seed; 2 subset methods x 3 selectors x 2 fractions per seed
    assert len(points) == 5 * (2 + 2 * 3 * 2) == 70
    names = [p.name for p in points]
    assert len(set(names)) == len(names)
    assert [n for n in names if n.startswith("full-aug")] == [f"full-aug__s{s}" for s in range(5)]
    assert [n for n in names if n.startswith("full__")] == [f"full__s{s}" for s in range(5)]
    assert "subset-only__coreset__f0.1__s0" in names and "random+aug-subset__maxloss__f0.3__s4" in names
    assert names[:2] == ["full__s0", "full-aug__s0"] and all(p.seed == 0 for p in points[:14])  # seed-major
    full = next(p for p in points if p.method == "full-aug")
    assert full.selector is None and full.fraction is None and full.axis_overrides() == {"method": "full-aug", "seed": 0}
    assert run_name("subset", "coreset", 0.05, 12) == "subset__coreset__f0.05__s12"
    assert parse_seeds("0-2,5,1") == [0, 1, 2, 5] and parse_seeds([3, "0-1"]) == [3, 0, 1]
    assert build_grid(selectors="all").selectors == list(known_selectors())


def test_grid_file_and_presets_merge(tmp_path):
    f = tmp_path / "grid.yaml"
    f.write_text("preset: digits-quick\nmethods: [subset-only]\nselectors: [random]\nfractions: [0.2]\n"
                 "seeds: 0-1\noverrides: {model: mlp, epochs: 3}\n")
    spec = build_grid(grid_file=f, overrides={"epochs": 4, "lr": None})
    assert spec.seeds == [0, 1] and spec.fractions == [0.2] and spec.overrides == {"model": "mlp", "epochs": 4}
    spec = build_grid("digits-selectors", f, seeds="7")  # preset < file < flags; overrides merged key by key
    assert spec.seeds == [7] and spec.methods == ["subset-only"]
    assert spec.overrides["epochs"] == 3 and spec.overrides["reselect_every"] == 5
    plan = plan_sweep(spec, tmp_path / "out")
    assert [p.point.name for p in plan] == ["subset-only__random__f0.2__s7"]
    assert plan[0].cfg.model == "mlp" and plan[0].cfg.epochs == 3 and plan[0].cfg.reselect_every == 5


# ----------------------------------------------------------------- running: skip / resume / fail
def _cfg(selector, seed=0, **kw):
    return resolve_config("digits-quick", overrides={**TINY, "method": "subset-only", "selector": selector,
                                                     "fraction": 0.1, "seed": seed, **kw})


def test_sweep_skips_completed_resumes_interrupted_and_reports(tmp_path, monkeypatch, capsys):
    import coreaug.train as train_pkg

    out = tmp_path / "sweep"
    train(_cfg("coreset"), out / "subset-only__coreset__f0.1__s0", quiet=True)  # completed
    part = train(_cfg("random"), out / "subset-only__random__f0.1__s0", quiet=True, stop_after_epoch=1)
    assert part["completed"] is False
    args = ["sweep", *TINY_FLAGS, "--methods", "subset-only,full", "--selectors", "coreset,random,maxloss",
            "--fractions", "0.1", "--seeds", "0", "--out", str(out)]

    assert main(args + ["--dry-run"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].startswith("sweep: 4 runs into") and "2 to run, 1 to resume, 1 completed" in listing[0]
    assert listing[1:] == [
        "  skip     subset-only__coreset__f0.1__s0  (completed, final acc "
        f"{json.loads((out / 'subset-only__coreset__f0.1__s0' / 'results.json').read_text())['final_test_acc']:.4f})",
        "  resume   subset-only__random__f0.1__s0  (checkpoint after epoch 1/2)",
        "  run      subset-only__maxloss__f0.1__s0",
        "  run      full__s0",
    ]
    assert not (out / "full__s0").exists()  # a dry run writes nothing

    calls = []
    real = train_pkg.train

    def spy(cfg, out_dir, **kw):
        calls.append((out_dir.name, kw["resume"]))
        return real(cfg, out_dir, **kw)

    monkeypatch.setattr(train_pkg, "train", spy)
    assert main(args + ["--quiet"]) == 0
    printed = capsys.readouterr().out
    assert calls == [("subset-only__random__f0.1__s0", True), ("subset-only__maxloss__f0.1__s0", False),
                     ("full__s0", False)]
    assert "[1/4] subset-only__coreset__f0.1__s0: skipped (completed" in printed
    assert "[2/4] subset-only__random__f0.1__s0: resumed, acc" in printed
    # the resumed run equals an uninterrupted one
    resumed = json.loads((out / "subset-only__random__f0.1__s0" / "results.json").read_text())
    fresh = real(_cfg("random"), tmp_path / "fresh", quiet=True)
    assert resumed["completed"] and resumed["epochs_done"] == 2
    assert resumed["final_test_acc"] == fresh["final_test_acc"]
    assert resumed["final_train_loss"] == pytest.approx(fresh["final_train_loss"], rel=1e-6)
    # the whole grid is reported
    summary = pd.read_csv(out / "report" / "summary.csv")
    assert sorted(summary["selector"]) == ["-", "coreset", "maxloss", "random"]
    md = (out / "report" / "summary.md").read_text()
    assert "accuracy mean ± 95% CI (%)" in md and "Welch" in md
    assert (out / "report" / "selector_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    # a second sweep skips everything
    calls.clear()
    assert main(args + ["--quiet"]) == 0
    assert calls == [] and capsys.readouterr().out.count("skipped (completed") == 4


def test_a_failed_run_is_one_line_and_the_sweep_goes_on(tmp_path, monkeypatch, capsys):
    import coreaug.train as train_pkg

    out = tmp_path / "sweep"
    (out / "subset-only__random__f0.1__s0").mkdir(parents=True)
    (out / "subset-only__random__f0.1__s0" / "notes.txt").write_text("someone else's file")
    real = train_pkg.train

    def flaky(cfg, out_dir, **kw):
        if cfg.selector == "maxloss":
            raise RuntimeError("boom\nsecond line")
        return real(cfg, out_dir, **kw)

    monkeypatch.setattr(train_pkg, "train", flaky)
    rc = main(["sweep", *TINY_FLAGS, "--methods", "subset-only", "--selectors", "coreset,random,maxloss",
               "--fractions", "0.1", "--seeds", "0", "--epochs", "1", "--out", str(out), "--quiet"])
    assert rc == 2
    cap = capsys.readouterr()
    assert "[2/3] subset-only__random__f0.1__s0: FAILED: ConfigError:" in cap.out
    assert "[3/3] subset-only__maxloss__f0.1__s0: FAILED: RuntimeError: boom\n" in cap.out
    assert "second line" not in cap.out
    assert cap.err.strip().splitlines() == [
        "coreaug: error: 2 of 3 runs failed: subset-only__random__f0.1__s0, subset-only__maxloss__f0.1__s0"]
    assert (out / "subset-only__coreset__f0.1__s0" / "results.json").is_file()
    assert (out / "subset-only__random__f0.1__s0" / "notes.txt").is_file()  # never deleted
    assert len(pd.read_csv(out / "report" / "summary.csv")) == 1  # report of what completed


def test_changed_config_in_a_completed_folder_is_a_conflict(tmp_path):
    out = tmp_path / "sweep"
    train(_cfg("random", epochs=1), out / "subset-only__random__f0.1__s0", quiet=True)
    spec = build_grid(preset="digits-quick", methods="subset-only", selectors="random", fractions="0.1", seeds="0",
                      overrides={**TINY})
    (p,) = plan_sweep(spec, out)
    assert p.action == "conflict" and "different configuration" in p.detail
    outcome = run_sweep([p], log=lambda s: None, train_fn=lambda *a, **k: pytest.fail("must not train"))
    assert outcome.failed == ["subset-only__random__f0.1__s0"]


# ------------------------------------------------------------------------------------ statistics
@pytest.mark.parametrize("values", [[0.9, 0.92, 0.95], [0.5, 0.7], [0.1, 0.2, 0.25, 0.3, 0.31, 0.4]])
@pytest.mark.parametrize("level", [0.95, 0.9])
def test_t_interval_matches_scipy(values, level):
    mean, half = t_interval(values, level)
    lo, hi = stats.t.interval(level, len(values) - 1, loc=sum(values) / len(values), scale=stats.sem(values))
    assert mean == pytest.approx((lo + hi) / 2, abs=1e-12) and half == pytest.approx((hi - lo) / 2, rel=1e-10)


def test_t_interval_and_welch_edge_cases():
    assert t_interval([0.8])[0] == 0.8 and math.isnan(t_interval([0.8])[1])
    assert math.isnan(welch_test([0.8], [0.7, 0.9])[1])
    assert welch_test([0.8, 0.8], [0.8, 0.8]) == (0.0, 1.0)
    assert welch_test([0.9, 0.9], [0.8, 0.8]) == (pytest.approx(0.1), 0.0)


def test_welch_matches_closed_form():
    a, b = [0.95, 0.97, 0.96, 0.99, 0.94], [0.90, 0.96, 0.93, 0.91]
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((x - ma) ** 2 for x in a) / (na - 1)
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1)
    se2 = va / na + vb / nb
    t = (ma - mb) / math.sqrt(se2)
    df = se2 ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))  # Welch–Satterthwaite
    diff, p = welch_test(a, b)
    assert diff == pytest.approx(ma - mb) and p == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-9)


def _fake(d, method, selector, fraction, seed, acc, time, dataset="digits", extra=None):
    d.mkdir(parents=True)
    subset = method not in ("full", "full-aug")
    res = {"dataset": dataset, "model": "mlp", "epochs": 2, "label_noise": 0.0, "method": method,
           "selector": selector if subset else None, "fraction": fraction if subset else 1.0, "seed": seed,
           "final_test_acc": acc, "best_test_acc": acc, "wall_clock_total": time, "train_time_total": time,
           "selection_time_total": time / 4, "examples_seen_total": 100, "epochs_done": 2, "completed": True,
           **(extra or {})}
    (d / "results.json").write_text(json.dumps(res))
    return load_run(d)


def test_stats_summary_verdicts_share_and_paper_column(tmp_path):
    runs = []
    rnd, core, ml = [0.80, 0.82, 0.81], [0.90, 0.91, 0.92], [0.79, 0.83, 0.80]
    for s in range(3):
        runs.append(_fake(tmp_path / f"r{s}", "subset-only", "random", 0.1, s, rnd[s], 2.0, "cifar10"))
        runs.append(_fake(tmp_path / f"c{s}", "subset-only", "coreset", 0.1, s, core[s], 4.0, "cifar10",
                          {"selection_share": 0.5}))
        runs.append(_fake(tmp_path / f"m{s}", "subset-only", "maxloss", 0.1, s, ml[s], 2.0, "cifar10"))
    runs.append(_fake(tmp_path / "fa", "full-aug", None, None, 0, 0.95, 20.0, "cifar10"))
    s = stats_summary_frame(runs).set_index("selector")
    assert s.loc["coreset", "acc_ci"] == pytest.approx(t_interval(core)[1])
    assert s.loc["coreset", "vs_random"] == "better" and s.loc["coreset", "vs_random_p"] < 0.05
    assert s.loc["maxloss", "vs_random"] == "within noise"
    assert s.loc["maxloss", "vs_random_p"] == pytest.approx(welch_test(ml, rnd)[1])
    assert s.loc["random", "vs_random"] == "reference"
    assert s.loc["coreset", "selection_share_mean"] == 0.5  # the recorded key wins
    assert s.loc["random", "selection_share_mean"] == pytest.approx(0.25)  # selection_time / wall_clock
    assert "6.3x" in s.loc["coreset", "paper"] and "7.7%" in s.loc["coreset", "paper"]
    assert s.loc["random", "paper"] == "" and s.loc["-", "paper"] == ""
    assert s.loc["coreset", "speedup_vs_full_aug"] == pytest.approx(5.0)


def test_paper_numbers_carry_sources():
    assert all(p.source.startswith("[paper]") for p in PAPER_NUMBERS)
    assert paper_cell("digits", "coreset", 0.1) == "" and paper_cell("cifar10", "random", 0.1) == ""
    assert paper_cell("cifar10", "coreset", 0.3) == "up to +10% vs baselines"


# ------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("flags, message", [
    (["--methods", "subset-only,bogus"], "unknown method 'bogus'"),
    (["--selectors", "coreset,nope"], "unknown selector 'nope'"),
    (["--fractions", "0.1,1.5"], "fraction must be in (0, 1]"),
    (["--fractions", "0.1,abc"], "bad subset fraction"),
    (["--seeds", "3-1"], "end is below the start"),
    (["--seeds", "0-x"], "bad seed list"),
    (["--grid-file", "MISSING.yaml"], "does not exist"),
    (["--grid-file", "BAD.yaml"], "cannot parse grid file"),
    (["--grid-file", "KEYS.yaml"], "unknown grid key(s) 'epochs'"),
    (["--grid", "paper-imagenet"], "unknown grid 'paper-imagenet'"),
    (["--set", "seed=3"], "seed is a grid axis"),
    (["--set", "novel_key=1"], "unknown config key(s) 'novel_key'"),
    (["--set", "noequals"], "use KEY=VALUE"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, flags, message):
    (tmp_path / "BAD.yaml").write_text("methods: [a, b\nseeds: {")
    (tmp_path / "KEYS.yaml").write_text("epochs: 3\n")
    flags = [str(tmp_path / f) if f.endswith(".yaml") else f for f in flags]
    rc = main(["sweep", "--preset", "digits-quick", "--out", str(tmp_path / "o"), "--dry-run", *flags])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("coreaug: error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------- paper grid
def test_paper_cifar10_grid_dry_run_without_data(tmp_path, capsys):
    assert main(["sweep", "--grid", "paper-cifar10", "--out", str(tmp_path / "p"), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("sweep paper-cifar10: 21 runs") and lines[-1].startswith("note: cifar10 needs --data-root")
    names = [ln.split()[1] for ln in lines[1:-1]]
    assert len(names) == 21 and names.count("full-aug__s0") == 1
    assert {n.split("__")[1] for n in names if n.count("__") == 3} == {"coreset", "random", "maxloss"}
    assert {n.split("__")[0] for n in names} == {"subset-only", "random+aug-subset", "full-aug"}
    plan = plan_sweep(build_grid("paper-cifar10"), tmp_path / "p")
    assert {(p.cfg.dataset, p.cfg.model, p.cfg.epochs) for p in plan} == {("cifar10", "resnet20", 200)}
    assert not (tmp_path / "p").exists()
    # without --dry-run and without data: one line, exit 2
    assert main(["sweep", "--grid", "paper-cifar10", "--out", str(tmp_path / "p"), "--seeds", "0"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--data-root" in err


def test_deadline_leaves_runs_not_started(tmp_path):
    spec = build_grid(preset="digits-quick", methods="subset-only", selectors="random", fractions="0.1", seeds="0-1",
                      overrides={**TINY})
    outcome = run_sweep(plan_sweep(spec, tmp_path), log=lambda s: None, deadline=0.0,
                        train_fn=lambda *a, **k: pytest.fail("must not train"))
    assert outcome.failed == [] and set(outcome.status.values()) == {"not started"} and outcome.completed_dirs == []


def test_same_config_accepts_a_field_added_later_at_its_default():
    from coreaug.runfolder import same_config

    cfg = _cfg("random")
    saved = cfg.to_dict()
    assert same_config(saved, cfg)
    older = {k: v for k, v in saved.items() if k != "aug_weight"}  # as if written before aug_weight existed
    assert same_config(older, cfg)
    assert not same_config(older, _cfg("random", aug_weight="gamma"))
    assert not same_config({**saved, "epochs": 3}, cfg) and not same_config({**saved, "gone": 1}, cfg)
    assert same_config({**saved, "device": "cuda", "threads": 4}, cfg)  # execution fields do not count


def test_a_run_stopped_before_its_first_checkpoint_starts_over(tmp_path):
    out = tmp_path / "sweep"
    d = out / "subset-only__random__f0.1__s0"
    spec = build_grid(preset="digits-quick", methods="subset-only", selectors="random", fractions="0.1", seeds="0",
                      overrides={**TINY, "epochs": 1})
    (p,) = plan_sweep(spec, out)
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(p.cfg.to_dict()))  # as if killed before epoch 1 ended
    (d / ".coreaug.lock").write_text("")  # a lock file left by a killed process is not the run's own
    (p,) = plan_sweep(spec, out)
    assert p.action == "run" and "restart" in p.detail
    outcome = run_sweep([p], log=lambda s: None)
    assert outcome.status == {p.point.name: "ok"} and json.loads((d / "results.json").read_text())["completed"]


# ------------------------------------------------------- issue 21: nothing lost, nothing counted twice
_GRID2 = ["sweep", *TINY_FLAGS, "--methods", "subset-only", "--selectors", "coreset,random", "--fractions", "0.1",
          "--seeds", "0", "--quiet"]


def _model_state(d):
    from coreaug.io import load_checkpoint

    return load_checkpoint(d / "checkpoint.pt")["model"]


def _same_run(a, b):
    """Two run folders hold the same results, per-epoch rows (wall-clock aside) and final weights."""
    import torch

    keep = ("final_test_acc", "final_train_loss", "best_test_acc", "epochs_done", "completed", "steps_total",
            "examples_seen_total", "config_hash")
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (a, b))
    assert {k: ra[k] for k in keep} == {k: rb[k] for k in keep}
    per_epoch = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "subset_size", "subset_weight_max",
                 "epoch_examples", "reselected", "steps")  # all but wall-clock measurements
    rows = [[{k: json.loads(line)[k] for k in per_epoch} for line in (d / "metrics.jsonl").read_text().splitlines()]
            for d in (a, b)]
    assert rows[0] == rows[1]
    ma, mb = _model_state(a), _model_state(b)
    assert ma.keys() == mb.keys() and all(torch.equal(ma[k], mb[k]) for k in ma)


def test_a_cell_stopped_by_a_full_disk_in_its_first_epoch_is_rerun(tmp_path, monkeypatch, capsys):
    """Item 1: a cell left with config.json, metrics and diagnostics files but no checkpoint (here: the disk
    filled up while its first checkpoint was written) restarts on the next sweep, like `train --resume`."""
    import errno
    import os

    out, ref = tmp_path / "sweep", tmp_path / "ref"
    real_replace = os.replace
    failures = []

    def full_disk(src, dst, *a, **k):
        if str(dst).endswith("checkpoint.pt") and "random" in str(dst) and not failures:
            failures.append(dst)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", full_disk)
    assert main(_GRID2 + ["--out", str(out)]) == 2
    cell = out / "subset-only__random__f0.1__s0"
    assert "no space left on device" in capsys.readouterr().out and failures
    left = sorted(p.name for p in cell.iterdir())
    assert "checkpoint.pt" not in left and "results.json" not in left
    assert {"config.json", "metrics.csv", "diagnostics.csv", "diagnostics.jsonl"} <= set(left)
    monkeypatch.setattr(os, "replace", real_replace)
    plan = {p.point.name: p for p in plan_sweep(build_grid(preset="digits-quick", methods="subset-only",
                                                           selectors="coreset,random", fractions="0.1", seeds="0",
                                                           overrides={**TINY}), out)}
    assert plan[cell.name].action == "run" and "restart" in plan[cell.name].detail
    assert main(_GRID2 + ["--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert "subset-only__coreset__f0.1__s0: skipped" in cap.out and cap.err.count("coreaug: error") == 0
    assert main(_GRID2 + ["--out", str(ref), "--no-report"]) == 0
    for name in ("subset-only__coreset__f0.1__s0", cell.name):
        _same_run(out / name, ref / name)
    assert len(pd.read_csv(out / "report" / "runs.csv")) == 2


def test_a_stopped_cell_of_another_configuration_is_a_conflict_and_kept(tmp_path, capsys):
    """Item 1, the other side of train --resume's rule: config.json of another configuration is refused."""
    out = tmp_path / "sweep"
    d = out / "subset-only__random__f0.1__s0"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(_cfg("random", epochs=5).to_dict()))
    (d / "diagnostics.csv").write_text("epoch\n0\n")
    spec = build_grid(preset="digits-quick", methods="subset-only", selectors="random", fractions="0.1", seeds="0",
                      overrides={**TINY})
    (p,) = plan_sweep(spec, out)
    assert p.action == "conflict" and "epochs" in p.detail and str(d) in p.detail
    assert run_sweep([p], log=lambda s: None, train_fn=lambda *a, **k: pytest.fail("must not train")).failed
    assert sorted(x.name for x in d.iterdir()) == ["config.json", "diagnostics.csv"]


def test_fractions_that_print_alike_get_their_own_folders(tmp_path):
    """Item 5: 0.1 and 0.1000001 are two grid points, two folders, two completed runs."""
    spec = build_grid(preset="digits-quick", methods="subset-only", selectors="random", fractions="0.1,0.1000001",
                      seeds="0", overrides={**TINY, "epochs": 1})
    names = [p.name for p in expand_grid(spec)]
    assert names == ["subset-only__random__f0.1__s0", "subset-only__random__f0.1000001__s0"]
    assert run_name("subset", "coreset", 1.0, 0) == "subset__coreset__f1__s0"  # unchanged where %g is exact
    outcome = run_sweep(plan_sweep(spec, tmp_path), log=lambda s: None)
    assert outcome.failed == [] and len(set(outcome.completed_dirs)) == 2
    fractions = [json.loads((d / "results.json").read_text())["fraction"] for d in outcome.completed_dirs]
    assert fractions == [0.1, 0.1000001]


def test_a_completed_run_from_elsewhere_is_not_taken_for_a_cell(tmp_path):
    """Item 6: a finished 3-epoch run without a config hash in a 2-epoch grid's folder is a conflict."""
    out = tmp_path / "sweep"
    d = out / "subset-only__random__f0.1__s0"
    train(_cfg("random", epochs=3), d, quiet=True)
    res = json.loads((d / "results.json").read_text())
    del res["config_hash"]
    (d / "results.json").write_text(json.dumps(res))
    spec = build_grid(preset="digits-quick", methods="subset-only", selectors="random", fractions="0.1", seeds="0",
                      overrides={**TINY})
    (p,) = plan_sweep(spec, out)
    assert p.action == "conflict" and "epochs" in p.detail
    (d / "config.json").write_text(json.dumps(p.cfg.to_dict()))  # a config.json that agrees; results.json does not
    (p,) = plan_sweep(spec, out)
    assert p.action == "conflict" and "epochs" in p.detail
    (d / "config.json").unlink()  # nothing to compare with: refused too
    (p,) = plan_sweep(spec, out)
    assert p.action == "conflict" and "config.json" in p.detail


def test_a_blocked_report_folder_stops_the_sweep_before_any_run(tmp_path, monkeypatch, capsys):
    import coreaug.train as train_pkg

    out = tmp_path / "sweep"
    out.mkdir()
    (out / "report").write_text("in the way")
    monkeypatch.setattr(train_pkg, "train", lambda *a, **k: pytest.fail("must not train"))
    assert main(_GRID2 + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("coreaug: error: ") and "report" in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["report"]
    monkeypatch.undo()
    assert main(_GRID2 + ["--out", str(out), "--no-report", "--epochs", "1"]) == 0  # without a report it can run


def test_a_sweep_into_a_run_folder_is_refused_before_any_run(tmp_path, monkeypatch, capsys):
    import coreaug.train as train_pkg

    run = tmp_path / "run"
    train(_cfg("random", epochs=1), run, quiet=True)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    monkeypatch.setattr(train_pkg, "train", lambda *a, **k: pytest.fail("must not train"))
    for out in (run, run / "sub"):
        assert main(_GRID2 + ["--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("coreaug: error: ") and "run folder" in err[0], err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_grid_points_sharing_a_folder_are_rejected_in_one_line():
    from coreaug.sweep import RunPoint, _check_names_unique

    a = RunPoint("subset-only__random__f0.1__s0", "subset-only", "random", 0.1, 0)
    b = RunPoint("subset-only__random__f0.1__s0", "subset-only", "random", 0.1000001, 0)
    with pytest.raises(ConfigError, match=r"would share the run folder subset-only__random__f0.1__s0") as e:
        _check_names_unique([a, b])
    assert "0.1000001" in str(e.value) and "\n" not in str(e.value)


def test_run_sweep_refuses_a_sweep_folder_another_sweep_holds(tmp_path):
    """Item 4 at the library level: run_sweep takes the sweep lock too (re-entrant within a process)."""
    import subprocess
    import sys

    from coreaug.errors import RunFolderBusyError
    from coreaug.runlock import acquire_sweep_lock

    spec = build_grid(preset="digits-quick", methods="subset-only", selectors="random", fractions="0.1", seeds="0",
                      overrides={**TINY})
    plan = plan_sweep(spec, tmp_path / "out")
    code = ("import sys; from coreaug.runlock import acquire_sweep_lock; "
            f"acquire_sweep_lock({str(tmp_path / 'out')!r}); print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderBusyError, match=rf"in use by another sweep \(PID {holder.pid}\)"):
            run_sweep(plan, log=lambda s: None, train_fn=lambda *a, **k: pytest.fail("must not train"))
    finally:
        holder.communicate("")
    with acquire_sweep_lock(tmp_path / "out"):  # held here: run_sweep re-enters it
        outcome = run_sweep(plan, log=lambda s: None, deadline=0.0, train_fn=lambda *a, **k: pytest.fail("no"))
    assert outcome.status == {plan[0].point.name: "not started"}
    assert list((tmp_path / "out").iterdir()) == []  # the lock file is gone with the last holder


def test_a_damaged_config_json_or_a_file_in_the_cells_place_is_a_conflict(tmp_path):
    spec = build_grid(preset="digits-quick", methods="subset-only", selectors="random", fractions="0.1", seeds="0",
                      overrides={**TINY})
    d = tmp_path / "subset-only__random__f0.1__s0"
    d.mkdir()
    (d / "config.json").write_text("{not json")
    (p,) = plan_sweep(spec, tmp_path)
    assert p.action == "conflict" and "config.json is unreadable" in p.detail
    (d / "config.json").unlink()
    d.rmdir()
    d.write_text("a file")
    (p,) = plan_sweep(spec, tmp_path)
    assert p.action == "conflict" and "is a file" in p.detail
