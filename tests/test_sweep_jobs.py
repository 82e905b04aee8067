"""``coreaug sweep`` grids of explicit cells (``--grid vs-pruning``, per-cell pruning, injective folder names),
``--jobs N`` (child processes) and ``--launcher submitit[-local]``: a real 2-cell grid run each way equals the
sequential sweep bit for bit; skip / resume, the run-folder lock, a failed cell, Ctrl-C; bad input in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from coreaug.cli import main
from coreaug.errors import ConfigError
from coreaug.sweep import GRID_PRESETS, build_grid, expand_grid, plan_sweep, run_sweep

TINY_FLAGS = ["--preset", "digits-quick", "--model", "mlp", "--epochs", "2", "--batch-size", "64", "--milestones", "",
              "--strong-aug", "gaussian-noise", "--device", "cpu", "--threads", "1", "--no-report", "--quiet"]
# a real 2-cell grid: an augmented coreset and InfoBatch pruning of full-aug (an explicit cell each)
GRID_YAML = textwrap.dedent("""\
    seeds: [0]
    cells:
      - {method: subset-only, selector: coreset, fraction: 0.1}
      - {method: full-aug, pruning: infobatch, prune_ratio: 0.3}
    """)
CELLS = ["subset-only__coreset__f0.1__s0", "full-aug__infobatch-r0.3__s0"]


# ------------------------------------------------------------------------------------------ the grids
def test_vs_pruning_grid_cells_names_and_configs():
    spec = build_grid("vs-pruning")
    points = expand_grid(spec)
    assert spec.seeds == [0, 1, 2, 3, 4] and len(points) == 5 * 8
    names = [p.name for p in points]
    assert len(set(names)) == len(names)
    assert names[:8] == ["full-aug__s0", "full-aug__infobatch-r0.3__s0", "full-aug__infobatch-r0.5__s0",
                         "full-aug__ucb-k0.7__s0", "subset-only__random__f0.1__s0", "subset-only__random__f0.3__s0",
                         "subset-only__coreset__f0.1__s0", "subset-only__coreset__f0.3__s0"]
    assert all(p.seed == 0 for p in points[:8]) and names[8] == "full-aug__s1"  # seed-major
    plan = {p.point.name: p.cfg for p in plan_sweep(spec, "/nonexistent/out")}
    ib = plan["full-aug__infobatch-r0.3__s2"]
    assert (ib.method, ib.pruning, ib.prune_ratio, ib.seed) == ("full-aug", "infobatch", 0.3, 2)
    assert plan["full-aug__infobatch-r0.5__s0"].prune_ratio == 0.5
    ucb = plan["full-aug__ucb-k0.7__s4"]
    assert (ucb.method, ucb.pruning, ucb.prune_keep) == ("full-aug", "ucb", 0.7)
    assert plan["full-aug__s0"].pruning == "none"
    rnd, cs = plan["subset-only__random__f0.1__s0"], plan["subset-only__coreset__f0.3__s1"]
    assert (rnd.selector, rnd.fraction, cs.selector, cs.fraction) == ("random", 0.1, "coreset", 0.3)
    assert {c.pruning for n, c in plan.items() if n.startswith("subset-only")} == {"none"}
    # every method sees the same strong augmentation (InfoBatch with strong augmentation)
    assert len({(c.strong_aug, c.aug_policy, c.noise_eps) for c in plan.values()}) == 1
    assert all(c.uses_strong_aug for c in plan.values())
    # the dataset / model are the user's; flags are fixed overrides, a cell's own keys win over them
    spec = build_grid("vs-pruning", seeds="0", overrides={"model": "mlp", "prune_ratio": 0.4, "epochs": 3})
    plan = {p.point.name: p.cfg for p in plan_sweep(spec, "/nonexistent/out")}
    assert {c.model for c in plan.values()} == {"mlp"} and {c.epochs for c in plan.values()} == {3}
    assert plan["full-aug__infobatch-r0.3__s0"].prune_ratio == 0.3


def test_grid_file_cells_alongside_the_product_and_injective_names(tmp_path):
    f = tmp_path / "grid.yaml"
    f.write_text(textwrap.dedent("""\
        preset: digits-quick
        methods: [full-aug]
        seeds: 0-1
        overrides: {model: mlp}
        cells:
          - {method: full-aug, pruning: infobatch, prune_ratio: 0.3}
          - {method: full-aug, pruning: infobatch, prune_ratio: 0.3, prune_delta: 0.5}
          - {method: full-aug, pruning: epsilon-greedy, prune_keep: 0.5}
          - {method: full-aug, pruning: ucb, prune_keep: 0.7, prune_c: 2}
          - {method: full-aug, lr: 0.01}
          - {method: subset-only, selector: k-center, fraction: 0.2, reselect_every: 3}
        slurm_partition: gpu
        slurm_time: "1:00:00"
        slurm_gpus: 1
        """))
    spec = build_grid(grid_file=f)
    assert (spec.slurm_partition, spec.slurm_time, spec.slurm_gpus) == ("gpu", "1:00:00", 1)
    points = expand_grid(spec)
    assert [p.name for p in points[:7]] == [
        "full-aug__s0", "full-aug__infobatch-r0.3__s0", "full-aug__infobatch-r0.3-d0.5__s0",
        "full-aug__epsilon-greedy-k0.5-e0.1__s0", "full-aug__ucb-k0.7-c2__s0", "full-aug__lr-0.01__s0",
        "subset-only__kcenter__f0.2__reselect_every-3__s0"]
    assert len(points) == 14 and len({p.name for p in points}) == 14
    cfgs = {p.point.name: p.cfg for p in plan_sweep(spec, tmp_path / "out")}
    assert cfgs["full-aug__infobatch-r0.3-d0.5__s1"].prune_delta == 0.5
    assert cfgs["full-aug__lr-0.01__s1"].lr == 0.01 and cfgs["full-aug__s1"].lr != 0.01
    assert cfgs["subset-only__kcenter__f0.2__reselect_every-3__s0"].reselect_every == 3
    # pruning as a fixed override names the product points too
    spec = build_grid(preset="digits-quick", methods="full-aug,full", seeds="0",
                      overrides={"pruning": "ucb", "prune_keep": 0.5})
    assert [p.name for p in expand_grid(spec)] == ["full-aug__ucb-k0.5__s0", "full__ucb-k0.5__s0"]


@pytest.mark.parametrize("grid, message", [
    ({"cells": [{"method": "full-aug", "seed": 3}]}, "grid cell 1 sets seed"),
    ({"cells": [{"method": "full-aug", "prune_rate": 0.3}]}, "unknown config key(s) 'prune_rate' in grid cell 1"),
    ({"cells": {"method": "full-aug"}}, "grid cells must be a list"),
    ({"cells": [{"method": "full-aug"}], "selectors": ["random"]}, "give --methods too"),
    ({"cells": [{"method": "full-aug"}, {"method": "full-aug", "selector": "random"}]},
     "grid cell 2 (method full-aug, selector random): full-aug trains on all n examples"),
    ({"cells": [{"method": "full-aug", "pruning": "infobatch", "prune_ratio": 1.0}]},
     "grid cell 1 (method full-aug, pruning infobatch, prune_ratio 1.0): prune ratio must be in [0, 1), got 1.0"),
    ({"cells": [{"method": "full-aug", "pruning": "infobatch", "prune_delta": 0}]}, "prune delta"),
    ({"cells": [{"method": "subset-only", "pruning": "ucb"}]}, "--pruning thins a full-data main set"),
    ({"cells": [{"method": "full-aug", "prune_ratio": 0.3}, {"method": "full-aug", "prune_ratio": 0.4}]},
     "would share the run folder full-aug__s0"),
])
def test_bad_grid_cells_raise_one_line(grid, message):
    with pytest.raises(ConfigError) as info:
        expand_grid(build_grid(preset="digits-quick", **grid))
    assert message in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------- real runs: --jobs 2 and submitit-local
def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from coreaug.io import load_checkpoint

    return load_checkpoint(run_dir / "checkpoint.pt")["model"]


def _assert_same_cells(a: Path, b: Path) -> None:
    """Each cell of sweep folder ``b`` equals that of ``a``: final accuracies and final weights, bit for bit."""
    for name in CELLS:
        ra, rb = (json.loads((d / name / "results.json").read_text()) for d in (a, b))
        assert rb["completed"] and rb["epochs_done"] == ra["epochs_done"] == 2
        assert (rb["final_test_acc"], rb["best_test_acc"]) == (ra["final_test_acc"], ra["best_test_acc"]), name
        wa, wb = _weights(a / name), _weights(b / name)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), name


@pytest.fixture(scope="module")
def grid_file(tmp_path_factory) -> Path:
    f = tmp_path_factory.mktemp("grid") / "grid.yaml"
    f.write_text(GRID_YAML)
    return f


@pytest.fixture(scope="module")
def sequential(grid_file) -> Path:
    """The reference: the 2-cell grid run by today's sequential sweep, in this process."""
    out = grid_file.parent / "sequential"
    assert main(["sweep", "--grid-file", str(grid_file), *TINY_FLAGS, "--out", str(out)]) == 0
    return out


def test_jobs_2_equals_the_sequential_sweep_resumes_and_skips(grid_file, sequential, tmp_path, capsys):
    from coreaug.train import resolve_config, train

    out = tmp_path / "jobs"
    # one cell was interrupted after its first epoch: --jobs 2 must resume it (and start the other)
    cfg = resolve_config("digits-quick", overrides={"model": "mlp", "epochs": 2, "batch_size": 64, "milestones": [],
                                                    "strong_aug": "gaussian-noise", "device": "cpu", "threads": 1,
                                                    "method": "full-aug", "pruning": "infobatch", "prune_ratio": 0.3})
    assert train(cfg, out / CELLS[1], quiet=True, stop_after_epoch=1)["completed"] is False
    capsys.readouterr()
    assert main(["sweep", "--grid-file", str(grid_file), *TINY_FLAGS, "--out", str(out), "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "1 to run, 1 to resume" in printed
    assert f"] {CELLS[0]}: started (job" in printed and f"] {CELLS[1]}: started (job" in printed
    assert f"{CELLS[1]}: resumed, acc" in printed and "2 of 2 runs complete, 0 failed" in printed
    _assert_same_cells(sequential, out)
    # a second sweep skips both cells and starts no child
    assert main(["sweep", "--grid-file", str(grid_file), *TINY_FLAGS, "--out", str(out), "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("skipped (completed") == 2 and "started" not in printed


def test_submitit_local_equals_the_sequential_sweep(grid_file, sequential, tmp_path, capsys):
    pytest.importorskip("submitit")
    out = tmp_path / "submitit"
    assert main(["sweep", "--grid-file", str(grid_file), *TINY_FLAGS, "--out", str(out),
                 "--launcher", "submitit-local", "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.count(": submitted (job ") == 2 and "2 of 2 runs complete, 0 failed" in printed
    _assert_same_cells(sequential, out)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(CELLS)


def test_jobs_report_a_failed_cell_and_the_run_lock_keeps_a_second_job_off_a_cell(grid_file, tmp_path, capsys):
    """A cell whose run folder another process holds fails in one line (its files untouched); the other cell
    completes, the report of what completed is written once, exit code 2."""
    import pandas as pd

    from coreaug.runlock import acquire_run_lock

    out = tmp_path / "sweep"
    flags = [a if a != "--no-report" else "--quiet" for a in TINY_FLAGS]
    with acquire_run_lock(out / CELLS[1]):  # as another job on this cell would
        rc = main(["sweep", "--grid-file", str(grid_file), *flags, "--epochs", "1", "--out", str(out), "--jobs", "2"])
        cap = capsys.readouterr()
        assert sorted(p.name for p in (out / CELLS[1]).iterdir()) == [".coreaug.lock"]
    assert rc == 2
    assert f"] {CELLS[1]}: FAILED: RunFolderBusyError: run folder" in cap.out and f"(PID {os.getpid()})" in cap.out
    assert cap.err.strip().splitlines() == [f"coreaug: error: 1 of 2 runs failed: {CELLS[1]}"]
    assert json.loads((out / CELLS[0] / "results.json").read_text())["completed"]
    assert len(pd.read_csv(out / "report" / "summary.csv")) == 1
    assert cap.out.count("report: ") == 1


def test_ctrl_c_stops_the_children_and_prints_interrupted(tmp_path):
    from coreaug.runlock import acquire_run_lock

    out = tmp_path / "sweep"
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID_YAML)
    cmd = [sys.executable, "-m", "coreaug", "sweep", "--grid-file", str(grid), *TINY_FLAGS, "--epochs", "400",
           "--out", str(out), "--jobs", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)  # as from a terminal, even when pytest runs in the background
    try:
        end = time.monotonic() + 240
        while not all((out / c / "checkpoint.pt").is_file() for c in CELLS):  # both children are training
            assert proc.poll() is None and time.monotonic() < end, proc.communicate()
            time.sleep(0.2)
        pids = [int((out / c / ".coreaug.lock").read_text()) for c in CELLS]
        assert os.getpid() not in pids and proc.pid not in pids
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and stderr.strip().splitlines()[-1] == "coreaug: interrupted", (stdout, stderr)
    for pid in pids:  # the children are gone and their run folders free, each with its checkpoint
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for c in CELLS:  # each child released its lock on the way out (a killed one leaves the lock file behind)
        assert not (out / c / ".coreaug.lock").exists()
        with acquire_run_lock(out / c):
            assert (out / c / "checkpoint.pt").is_file() and not (out / c / "results.json").exists()
    assert not (out / ".coreaug-sweep.lock").exists()


def _default_sigint() -> None:
    """In the child before exec: SIGINT's default action (a background job inherits it ignored, and keeps it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# ------------------------------------------------------------------- the launcher without training
FAKE_PYTHON = textwrap.dedent("""\
    #!{python}
    # stands in for the worker `python -m coreaug.launch` (one task a line on stdin): records what it was given,
    # waits until {n} cells have started (so the first cells must run at once), writes a completed outcome;
    # a maxloss cell kills its process
    import json, os, sys, time
    from pathlib import Path
    assert sys.argv[1:] == ["-m", "coreaug.launch"], sys.argv
    log = Path({log!r})
    for line in sys.stdin:
        task = json.loads(line)
        name = Path(task["out"]).name
        (log / (name + ".json")).write_text(json.dumps({{"cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "omp": os.environ.get("OMP_NUM_THREADS"), "threads": task["config"]["threads"],
            "resume": task["resume"], "pid": os.getpid()}}))
        if "maxloss" in name:
            print("boom", file=sys.stderr, flush=True)
            sys.exit(3)
        if "el2n" in name:  # keeps the other slot busy, so the next cell goes to the crashed slot's new process
            time.sleep(5)
        end = time.monotonic() + 60
        while len(list(log.glob("*.json"))) < {n} and time.monotonic() < end:
            time.sleep(0.05)
        ok = len(list(log.glob("*.json"))) >= {n}
        Path(task["outcome"]).write_text(json.dumps({{"results": {{"completed": True, "epochs_done": 1,
            "final_test_acc": 0.5, "wall_clock_total": 0.0, "selection_time_total": 0.0}}}} if ok
            else {{"error": "Timeout", "message": "alone"}}))
    """)


def test_local_jobs_run_cells_at_once_round_robin_gpus_and_split_threads(tmp_path, monkeypatch):
    """4 cells on 2 job slots: the first two run at once (they wait for each other), each slot's process
    trains cell after cell with its own GPU and the split threads; a cell that kills its process fails in one
    line and its slot gets a new process for the next cell."""
    import coreaug.device
    from coreaug.launch import LocalJobs, make_launcher

    log = tmp_path / "log"
    log.mkdir()
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON.format(python=sys.executable, log=str(log), n=2))
    fake.chmod(0o755)
    spec = build_grid(preset="digits-quick", methods="subset-only", selectors="random,coreset,maxloss,el2n,herding",
                      fractions="0.1", seeds="0")
    planned = plan_sweep(spec, tmp_path / "out")
    lines: list[str] = []
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    outcome = run_sweep(planned, log=lines.append, launcher=LocalJobs(2, threads=3, gpus=["4", "6"], python=str(fake)))
    maxloss = "subset-only__maxloss__f0.1__s0"
    assert outcome.failed == [maxloss], lines
    assert outcome.status[maxloss] == "the job process ended (exit code 3): boom"
    assert f"[3/5] {maxloss}: FAILED: the job process ended (exit code 3): boom" in lines
    assert [outcome.status[p.point.name] for p in planned if p.point.name != maxloss] == ["ok"] * 4
    seen = {p.name[:-5]: json.loads(p.read_text()) for p in log.glob("*.json")}
    assert len(seen) == 5 and all(s["threads"] == 3 and s["omp"] == "3" and s["resume"] is False
                                  for s in seen.values())
    by_pid: dict[int, set] = {}
    for s in seen.values():
        by_pid.setdefault(s["pid"], set()).add(s["cuda"])
    assert all(len(c) == 1 for c in by_pid.values())  # a process keeps its slot's GPU
    assert len(by_pid) == 3  # two slots, one process restarted after the crash
    assert {s["cuda"] for s in seen.values()} == {"4", "6"}  # one GPU each: job slot k gets GPU k mod 2
    started = [line.split(": ")[1] for line in lines if ": started" in line]
    assert set(started) == {"started (job 1/2, GPU 4, 3 threads)", "started (job 2/2, GPU 6, 3 threads)"}
    assert len(started) == 5
    # --jobs N splits the cores unless the grid fixes threads; --jobs 1 is today's in-process loop
    monkeypatch.setattr(coreaug.device, "available_cpus", lambda: 16)
    assert make_launcher("local", jobs=3, out=tmp_path, threads_fixed=False).threads == 5
    assert make_launcher("local", jobs=32, out=tmp_path, threads_fixed=False).threads == 1
    assert make_launcher("local", jobs=3, out=tmp_path, threads_fixed=True).threads is None
    assert make_launcher("local", jobs=1, out=tmp_path, threads_fixed=False) is None


def test_slurm_time_and_executor_parameters(tmp_path, monkeypatch):
    import coreaug.device
    from coreaug.launch import make_launcher, parse_slurm_time

    assert [parse_slurm_time(v) for v in (90, "90", "1:30", "2:00:00", "1-0", "1-2:30", "0:0:30")] == [
        90, 90, 2, 120, 1440, 1590, 1]
    for bad in ("", "abc", "1:2:3:4", "0", -5, True, "1h"):
        with pytest.raises(ConfigError, match="bad --slurm-time"):
            parse_slurm_time(bad)
    pytest.importorskip("submitit")
    launcher = make_launcher("submitit-local", jobs=None, out=tmp_path, threads_fixed=True, slurm_time="0:10:00",
                             slurm_gpus=0)
    ex = launcher.executor()
    assert ex.cluster == "local" and ex._executor.parameters["timeout_min"] == 10
    # submitit-local: at most one job a core in flight by default, sharing the cores like --jobs
    monkeypatch.setattr(coreaug.device, "available_cpus", lambda: 4)
    launcher = make_launcher("submitit-local", jobs=None, out=tmp_path, threads_fixed=False)
    assert (launcher.jobs, launcher.threads, launcher.minutes) == (4, 1, 240)
    launcher = make_launcher("submitit-local", jobs=2, out=tmp_path, threads_fixed=False)
    assert (launcher.jobs, launcher.threads) == (2, 2)


# ------------------------------------------------------------------------------------------ bad input
def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("extra, message", [
    (["--jobs", "0"], "--jobs must be an integer >= 1 (cells run at once), got 0"),
    (["--jobs", "-2"], "--jobs must be an integer >= 1"),
    (["--launcher", "kubernetes"], "unknown launcher 'kubernetes'; choose one of: local, submitit, slurm"),
    (["--launcher", "slurm"], "there is no 'sbatch' on PATH"),
    (["--launcher", "submitit"], "there is no 'sbatch' on PATH"),
    (["--launcher", "submitit-local", "--slurm-time", "soon"], "bad --slurm-time 'soon'"),
    (["--launcher", "submitit-local", "--slurm-gpus", "-1"], "--slurm-gpus must be an integer >= 0"),
    (["--prune-ratio", "1.5"], "prune ratio must be in [0, 1), got 1.5"),
    (["--prune-delta", "0"], "prune delta (the share of epochs that prune) must be in (0, 1], got 0.0"),
])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no sbatch
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID_YAML)
    args = ["sweep", "--grid-file", str(grid), *TINY_FLAGS, "--out", str(tmp_path / "new")]
    assert main(args + extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("coreaug: error: ") and message in err, err
    assert not (tmp_path / "new").exists()
    # an existing sweep folder with a half-done cell is left exactly as it was
    old = tmp_path / "old"
    (old / CELLS[0]).mkdir(parents=True)
    (old / CELLS[0] / "config.json").write_text("{}")
    before = _tree(old)
    assert main(["sweep", "--grid-file", str(grid), *TINY_FLAGS, "--out", str(old), *extra]) == 2
    assert _tree(old) == before and sorted(p.name for p in old.iterdir()) == [CELLS[0]]


@pytest.mark.parametrize("cell, message", [
    ("{method: full-aug, pruning: infobatch, prune_ratio: 1.0}", "prune ratio must be in [0, 1), got 1.0"),
    ("{method: full-aug, pruning: infobatch, prune_ratio: -0.1}", "prune ratio must be in [0, 1), got -0.1"),
    ("{method: full-aug, pruning: infobatch, prune_delta: 0}", "prune delta (the share of epochs that prune) must be"),
    ("{method: full-aug, pruning: infobatch, prune_delta: 1.5}", "in (0, 1], got 1.5"),
])
def test_a_bad_pruning_cell_in_a_grid_file_is_one_line(tmp_path, capsys, cell, message):
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"seeds: [0]\ncells:\n  - {{method: full-aug}}\n  - {cell}\n")
    assert main(["sweep", "--grid-file", str(grid), *TINY_FLAGS, "--out", str(tmp_path / "out"), "--jobs", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("coreaug: error: grid cell 2 (") and message in err, err
    assert not (tmp_path / "out").exists()


def test_submitit_not_installed_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit → ImportError
    grid = tmp_path / "grid.yaml"
    grid.write_text(GRID_YAML)
    for launcher in ("submitit", "submitit-local", "slurm"):
        assert main(["sweep", "--grid-file", str(grid), *TINY_FLAGS, "--out", str(tmp_path / "out"),
                     "--launcher", launcher]) == 2
        assert capsys.readouterr().err == ("coreaug: error: --launcher submitit needs the optional package submitit: "
                                           'pip install -e ".[submitit]"\n')
    assert not (tmp_path / "out").exists()


def test_vs_pruning_preset_is_listed_in_the_help(capsys):
    assert "vs-pruning" in GRID_PRESETS
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "InfoBatch with strong augmentation: every method sees the same strong augmentation" in text
    assert "--jobs N" in text and "submitit-local" in text


def test_a_missing_dataset_stops_a_jobs_sweep_as_it_stops_a_sequential_one(tmp_path):
    from coreaug.errors import DatasetNotFoundError
    from coreaug.launch import LocalJobs

    fake = tmp_path / "python"
    fake.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, sys
        for line in sys.stdin:
            task = json.loads(line)
            open(task["outcome"], "w").write(json.dumps({{"error": "DatasetNotFoundError", "message": "no data"}}))
        """))
    fake.chmod(0o755)
    spec = build_grid(preset="digits-quick", methods="subset-only", selectors="random,coreset,maxloss",
                      fractions="0.1", seeds="0")
    lines: list[str] = []
    with pytest.raises(DatasetNotFoundError, match="no data"):
        run_sweep(plan_sweep(spec, tmp_path / "out"), log=lines.append,
                  launcher=LocalJobs(1, gpus=[], python=str(fake)))
    assert [line for line in lines if "started" in line] == ["[1/3] subset-only__random__f0.1__s0: started (job 1/1)"]


def test_a_requeued_submitit_job_resumes_its_cell(tmp_path):
    pytest.importorskip("submitit")
    from coreaug.launch import CellJob

    task = {"config": {}, "out": str(tmp_path / "cell"), "resume": False}
    assert CellJob().checkpoint(task).kwargs == {} and CellJob().checkpoint(task).args[0]["resume"] is False
    (tmp_path / "cell").mkdir()
    (tmp_path / "cell" / "config.json").write_text("{}")  # stopped in its first epoch: train's resume restarts it
    again = CellJob().checkpoint(task)
    assert isinstance(again.function, CellJob) and again.args[0] == {**task, "resume": True}
