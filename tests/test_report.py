"""``coreaug report``: table over seeds, speed-up vs full-aug, Markdown/CSV/PNG written atomically."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from coreaug.cli import main
from coreaug.errors import ConfigError
from coreaug.report import find_runs, runs_frame, summary_frame, load_run
from coreaug.train import resolve_config, train

TINY = {"model": "mlp", "epochs": 2, "batch_size": 64, "fraction": 0.1, "milestones": [], "device": "cpu",
        "strong_aug": "gaussian-noise"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    for name, kw in {"fullaug-s0": {"method": "full-aug", "seed": 0}, "core-s0": {"seed": 0},
                     "core-s1": {"seed": 1}}.items():
        train(resolve_config("digits-quick", overrides={**TINY, **kw}), root / name, quiet=True)
    torch.set_num_threads(before)
    return root


def _fake_run(d, method, seed, acc, time, selector="coreset", fraction=0.1):
    d.mkdir(parents=True)
    res = {"dataset": "digits", "model": "mlp", "epochs": 2, "label_noise": 0.0, "method": method,
           "selector": selector if method not in ("full", "full-aug") else None,
           "fraction": fraction if method not in ("full", "full-aug") else 1.0, "seed": seed,
           "final_test_acc": acc, "best_test_acc": acc, "wall_clock_total": time, "train_time_total": time,
           "selection_time_total": 0.0, "examples_seen_total": 100, "epochs_done": 2}
    (d / "results.json").write_text(json.dumps(res))
    (d / "metrics.csv").write_text(f"epoch,wall_clock,test_acc\n1,{time / 2},{acc - 0.1}\n2,{time},{acc}\n")


def test_summary_math_on_known_numbers(tmp_path):
    _fake_run(tmp_path / "a", "full-aug", 0, 0.90, 10.0)
    _fake_run(tmp_path / "b", "full-aug", 1, 0.94, 14.0)
    _fake_run(tmp_path / "c", "subset-only", 0, 0.80, 2.0)
    _fake_run(tmp_path / "d", "subset-only", 1, 0.84, 4.0)
    _fake_run(tmp_path / "e", "subset-only", 0, 0.70, 3.0, selector="random")
    s = summary_frame(runs_frame([load_run(p) for p in find_runs([tmp_path])]))
    assert list(s["method"]) == ["full-aug", "subset-only", "subset-only"]
    fa = s[s.method == "full-aug"].iloc[0]
    assert fa.acc_mean == pytest.approx(0.92) and fa.acc_std == pytest.approx(pd.Series([0.90, 0.94]).std())
    assert fa.speedup_vs_full_aug == pytest.approx(1.0)
    co = s[(s.method == "subset-only") & (s.selector == "coreset")].iloc[0]
    assert co.seeds == 2 and co.time_mean == pytest.approx(3.0) and co.speedup_vs_full_aug == pytest.approx(12.0 / 3.0)
    rnd = s[s.selector == "random"].iloc[0]
    assert rnd.acc_std == 0.0 and rnd.speedup_vs_full_aug == pytest.approx(4.0)


def test_report_cli_on_real_runs(runs, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(runs / "fullaug-s0"), str(runs / "core-s0"), str(runs / "core-s1"),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| digits | mlp | full-aug |" in printed and "1.00x" in printed
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 2
    core = summary[summary.method == "subset-only"].iloc[0]
    assert core.seeds == 2 and core.selector == "coreset" and core.fraction == 0.1
    assert core.speedup_vs_full_aug > 0
    md = (out / "summary.md").read_text()
    table, cost = md.split("\n## Accuracy at matched cost\n")
    assert table.startswith("| dataset | model | method |") and table.count("\n") == 4
    assert "| full-aug * |" in cost or "| full-aug |" in cost  # the matched-cost section (coreaug.report.matched_cost)
    assert (out / "accuracy_vs_cost.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(pd.read_csv(out / "matched_cost.csv")) == 2
    assert (out / "accuracy_vs_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(pd.read_csv(out / "runs.csv")) == 3
    assert not list(out.glob(".*.tmp"))
    # a folder of run folders is expanded
    assert main(["report", str(runs), "--out", str(tmp_path / "r2"), "--quiet"]) == 0


def test_report_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no finished run"):
        find_runs([tmp_path / "empty"])
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------- issue 21: nothing lost, nothing counted twice
def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("target", ["core-s0", "core-s0/sub", "fullaug-s0"])
def test_report_never_writes_into_a_run_folder(runs, tmp_path, capsys, target):
    """Item 2: --out a run folder (or inside one) is refused with one line and nothing of the run changes."""
    before = {d.name: _snapshot(d) for d in runs.iterdir()}
    assert (runs / "core-s0" / "diagnostics.csv").is_file()  # the file a report would overwrite
    for argv in ([str(runs)], [str(runs / "core-s0"), str(runs / "core-s1")]):
        assert main(["report", *argv, "--out", str(runs / target), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("coreaug: error: ") and "run folder" in err[0], err
    assert {d.name: _snapshot(d) for d in runs.iterdir()} == before
    assert not (runs / "core-s0" / "sub").exists()


def test_a_run_given_twice_is_counted_once(runs, tmp_path, capsys):
    """Item 3: the same run folder reached twice (named twice, inside a given folder, through a symlink)
    is one seed, and the report says so in one note line."""
    link = tmp_path / "link"
    link.symlink_to(runs / "core-s0", target_is_directory=True)
    cases = [[runs / "core-s0", runs / "core-s0"], [runs, runs / "core-s0"], [runs, link], [runs, runs]]
    for i, argv in enumerate(cases):
        out = tmp_path / f"r{i}"
        assert main(["report", *map(str, argv), "--out", str(out), "--quiet"]) == 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("coreaug: note: ") and "counted once" in err[0], err
        rows = pd.read_csv(out / "runs.csv")
        assert len(rows) == len({p.resolve() for p in find_runs(argv)}) == (1 if i == 0 else 3)
        core = pd.read_csv(out / "summary.csv").query("method == 'subset-only'").iloc[0]
        assert core.seeds == (1 if i == 0 else 2)


@pytest.mark.parametrize("damage, words", [
    (lambda d: (d / "results.json").write_text("[1, 2]"), "results.json is not a JSON object"),
    (lambda d: (d / "results.json").write_text('{"final_test_acc": "high"}'), "final_test_acc must be a finite number"),
    (lambda d: (d / "results.json").write_text('{"final_test_acc": NaN}'), "final_test_acc must be a finite number"),
    (lambda d: (d / "metrics.csv").write_text("epoch,test_acc,wall_clock,train_time,selection_time\n1,abc,1,1,0\n"),
     "column 'test_acc' holds non-numbers"),
    (lambda d: (d / "metrics.csv").write_text("a,b\n1,2\n"), "has no 'epoch' column"),
])
def test_damaged_run_files_are_one_line_errors(runs, tmp_path, capsys, damage, words):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(runs / "core-s0", bad)
    damage(bad)
    assert main(["report", str(bad), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and "Traceback" not in err


def test_grid_overrides_of_the_wrong_type_is_one_line(tmp_path, capsys):
    grid = tmp_path / "g.yaml"
    grid.write_text("overrides: [1, 2]\nseeds: [0]\nmethods: [full]\n")
    assert main(["sweep", "--grid-file", str(grid), "--out", str(tmp_path / "sw"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "'overrides' must be a mapping" in err and err.count("\n") == 1
