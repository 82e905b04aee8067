"""Chaos: SIGKILL real ``coreaug train`` processes at exact points, resume each, compare with an uninterrupted run.

Each victim runs ``python -m coreaug train`` on digits (MLP, 3 epochs) with ``COREAUG_PAUSE_AT`` set
(:mod:`coreaug.hooks`): at the named point it writes its PID to a sentinel file and sleeps; the test
polls for the sentinel, then SIGKILLs it — no timing guesses. The kill points:

=========================  =====================================================================
``run:locked``             folder locked, nothing written yet (before config.json)
``train:step#3``           during epoch 1: config.json written, no checkpoint yet
``write:checkpoint.pt#3``  after epoch 2's checkpoint, inside the atomic write of epoch 3's: its
                           temp file is on disk, the epoch-2 checkpoint intact
=========================  =====================================================================

``pytest -m slow`` adds: after the 1st checkpoint (``epoch:end#1``), mid-epoch 2 (``train:step#7``),
inside the 1st metrics write (``write:metrics.jsonl#1``), and after the last checkpoint but before
results.json (``epoch:end#3``).

While the second victim is paused, a second run and a ``--resume`` into its folder (from this, another
process) must be refused naming its PID. After the kill every folder is resumed and must end
bit-identical to the uninterrupted run: final weights, subset, per-epoch metrics and results.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from coreaug.cli import main
from coreaug.io import load_checkpoint
from coreaug.runlock import LOCK_NAME

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and fcntl locks")

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--preset", "digits-quick", "--model", "mlp", "--epochs", "3", "--fraction", "0.1", "--reselect-every", "2",
        "--strong-aug", "gaussian-noise", "--batch-size", "64", "--threads", "1", "--quiet"]
RUN_FILES = ["checkpoint.pt", "config.json", "diagnostics.csv", "diagnostics.jsonl", "metrics.csv", "metrics.jsonl",
             "results.json"]  # digits-quick logs spectral diagnostics (epochs 0 and 3 here)
ROW_KEYS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "test_balanced_acc", "subset_size",
            "subset_weight_max",
            "epoch_examples", "reselected", "steps")  # everything per epoch but wall-clock measurements
RESULT_KEYS = ("final_test_acc", "final_test_loss", "final_train_loss", "final_test_balanced_acc", "best_test_acc",
               "best_epoch", "epochs_done", "completed", "examples_seen_total", "steps_total", "n_selections",
               "mean_subset_size", "config_hash", "seed")
KILL_POINTS = ("run:locked", "train:step#3", "write:checkpoint.pt#3")
MORE_KILL_POINTS = ("epoch:end#1", "train:step#7", "write:metrics.jsonl#1", "epoch:end#3")


def _start(point: str, out: Path, sentinel: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "COREAUG_PAUSE_AT": point, "COREAUG_PAUSE_FILE": str(sentinel), "COREAUG_PAUSE_TIMEOUT": "300"}
    return subprocess.Popen([sys.executable, "-m", "coreaug", "train", *ARGS, "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=out.parent)


def _wait_paused(proc: subprocess.Popen, sentinel: Path, timeout: float = 240.0) -> int:
    """Poll until the victim reports (through the sentinel) that it sits at its pause point; return its PID."""
    deadline = time.monotonic() + timeout
    while not sentinel.exists():
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"victim exited with {proc.returncode} before its pause point: {err.decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("victim never reached its pause point")
        time.sleep(0.05)
    pid = int(sentinel.read_text())
    assert pid == proc.pid
    return pid


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: r[k] for k in ROW_KEYS} for r in rows]


def _assert_identical(run: Path, ref: Path) -> None:
    assert sorted(p.name for p in run.iterdir()) == RUN_FILES  # no lock file, no temp files left
    a, b = load_checkpoint(run / "checkpoint.pt"), load_checkpoint(ref / "checkpoint.pt")
    assert a["epoch"] == b["epoch"] == 3
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["subset"][k], b["subset"][k]) for k in ("indices", "weights"))
    assert _rows(run) == _rows(ref)
    diag = [[{k: v for k, v in json.loads(line).items() if k != "time"}
             for line in (d / "diagnostics.jsonl").read_text().splitlines()] for d in (run, ref)]
    assert [r["epoch"] for r in diag[1]] == [0, 3] and diag[0] == diag[1]
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (run, ref))
    assert {k: ra[k] for k in RESULT_KEYS} == {k: rb[k] for k in RESULT_KEYS}
    assert json.loads((run / "config.json").read_text()) == json.loads((ref / "config.json").read_text())


def _chaos(tmp_path: Path, capsys, points: tuple[str, ...]) -> dict[str, list[str]]:
    """Start one victim per kill point, SIGKILL each at its point, resume each, compare with a reference.

    Returns what each kill left behind (file names), for the caller's checks."""
    victims = {}
    for i, point in enumerate(points):  # all victims start at once: their imports overlap
        out, sentinel = tmp_path / f"victim{i}", tmp_path / f"victim{i}.paused"
        victims[point] = (out, sentinel, _start(point, out, sentinel))
    try:
        ref = tmp_path / "reference"
        assert main(["train", *ARGS, "--out", str(ref)]) == 0
        assert sorted(p.name for p in ref.iterdir()) == RUN_FILES
        pids = {point: _wait_paused(proc, sentinel) for point, (_, sentinel, proc) in victims.items()}
        # a live run's folder is locked: a second run and a --resume from this process are refused
        out, _, proc = victims[points[1]]
        capsys.readouterr()
        for argv in ([*ARGS, "--out", str(out)], ["--resume", "--quiet", "--out", str(out)]):
            assert main(["train", *argv]) == 2
            err = capsys.readouterr().err.splitlines()
            assert err == [f"coreaug: error: run folder {out} is in use by another run "
                           f"(PID {pids[points[1]]}); wait for it to end or choose another --out"]
    finally:
        for _, _, proc in victims.values():
            if proc.poll() is None:
                _kill(proc)
    left = {point: sorted(p.name for p in out.iterdir()) for point, (out, _, _) in victims.items()}
    for point, (out, _, _) in victims.items():  # the checkpoint's epoch at the kill, as "epoch=N"
        if (out / "checkpoint.pt").is_file():
            left[point].append(f"epoch={load_checkpoint(out / 'checkpoint.pt')['epoch']}")
    capsys.readouterr()
    for point, (out, _, _) in victims.items():
        if "config.json" in left[point]:
            assert main(["train", "--resume", "--quiet", "--out", str(out)]) == 0, point
        else:  # stopped before config.json: the plain --resume cannot know the settings; the original command can
            assert main(["train", "--resume", "--quiet", "--out", str(out)]) == 2
            assert "no config.json" in capsys.readouterr().err
            assert main(["train", *ARGS, "--resume", "--out", str(out)]) == 0, point
        err = capsys.readouterr().err
        if "checkpoint.pt" not in left[point]:
            assert "starting from epoch 0" in err, point
        _assert_identical(out, ref)
    return left


def test_sigkill_at_every_stage_then_resume_equals_uninterrupted(tmp_path, capsys):
    left = _chaos(tmp_path, capsys, KILL_POINTS)
    assert left["run:locked"] == [LOCK_NAME]  # nothing but the lock file
    # no checkpoint yet (the epoch-0 diagnostics are written before training starts)
    assert left["train:step#3"] == [LOCK_NAME, "config.json", "diagnostics.csv", "diagnostics.jsonl"]
    tmp = [n for n in left["write:checkpoint.pt#3"] if n.startswith(".checkpoint.pt.") and n.endswith(".tmp")]
    assert len(tmp) == 1 and "epoch=2" in left["write:checkpoint.pt#3"]  # the old checkpoint is intact


@pytest.mark.slow
def test_sigkill_at_more_points(tmp_path, capsys):
    left = _chaos(tmp_path, capsys, MORE_KILL_POINTS)
    assert "epoch=1" in left["epoch:end#1"] and "epoch=1" in left["train:step#7"]
    assert "checkpoint.pt" not in left["write:metrics.jsonl#1"]
    assert "epoch=3" in left["epoch:end#3"] and "results.json" not in left["epoch:end#3"]


# ------------------------------------------------------------------------------------------ sweeps
SWEEP_ARGS = ["--preset", "digits-quick", "--model", "mlp", "--epochs", "2", "--batch-size", "64", "--milestones", "",
              "--strong-aug", "gaussian-noise", "--device", "cpu", "--threads", "1", "--methods", "subset-only",
              "--selectors", "coreset,random", "--fractions", "0.1", "--seeds", "0", "--quiet"]
SWEEP_CELLS = ("subset-only__coreset__f0.1__s0", "subset-only__random__f0.1__s0")


def _start_sweep(point: str, out: Path, sentinel: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "COREAUG_PAUSE_AT": point, "COREAUG_PAUSE_FILE": str(sentinel), "COREAUG_PAUSE_TIMEOUT": "300"}
    return subprocess.Popen([sys.executable, "-m", "coreaug", "sweep", *SWEEP_ARGS, "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=out.parent)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_same_cell(run: Path, ref: Path, epochs: int) -> None:
    """``run`` ended exactly as ``ref``: files, final weights and subset, per-epoch rows, diagnostics, results."""
    assert sorted(p.name for p in run.iterdir()) == RUN_FILES  # no lock file, no temp files left
    a, b = load_checkpoint(run / "checkpoint.pt"), load_checkpoint(ref / "checkpoint.pt")
    assert a["epoch"] == b["epoch"] == epochs and a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["subset"][k], b["subset"][k]) for k in ("indices", "weights"))
    assert _rows(run) == _rows(ref)
    diag = [[{k: v for k, v in json.loads(line).items() if k != "time"}
             for line in (d / "diagnostics.jsonl").read_text().splitlines()] for d in (run, ref)]
    assert [r["epoch"] for r in diag[1]] == [0, epochs] and diag[0] == diag[1]
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (run, ref))
    assert {k: ra[k] for k in RESULT_KEYS} == {k: rb[k] for k in RESULT_KEYS}
    assert json.loads((run / "config.json").read_text()) == json.loads((ref / "config.json").read_text())


def test_sigkill_a_sweep_in_a_cells_first_epoch_then_rerun_equals_uninterrupted(tmp_path, capsys):
    """SIGKILL a sweep in the first epoch of its 2nd cell (the 1st is complete, the 2nd has config.json and
    the epoch-0 diagnostics, no checkpoint). While it is paused, a second sweep into the same OUT is refused
    at once and changes nothing. The rerun skips the 1st cell, starts the 2nd over, and every cell, and the
    report, ends as in an uninterrupted sweep."""
    import pandas as pd

    ref = tmp_path / "reference"
    assert main(["sweep", *SWEEP_ARGS, "--out", str(ref)]) == 0
    steps = json.loads((ref / SWEEP_CELLS[0] / "results.json").read_text())["steps_total"]
    out, sentinel = tmp_path / "sweep", tmp_path / "sweep.paused"
    proc = _start_sweep(f"train:step#{steps + 2}", out, sentinel)  # the 2nd step of the 2nd cell
    try:
        pid = _wait_paused(proc, sentinel)
        before = _tree(out)
        capsys.readouterr()
        assert main(["sweep", *SWEEP_ARGS, "--out", str(out)]) == 2
        cap = capsys.readouterr()
        assert cap.err.splitlines() == [
            f"coreaug: error: sweep folder {out} is in use by another sweep (PID {pid}): nothing was run; "
            "wait for it to end, then rerun to finish the grid, or choose another --out"]
        assert cap.out == "" and _tree(out) == before
    finally:
        if proc.poll() is None:
            _kill(proc)
    assert (out / SWEEP_CELLS[0] / "results.json").is_file() and not (out / "report").exists()
    assert sorted(p.name for p in (out / SWEEP_CELLS[1]).iterdir()) == [
        LOCK_NAME, "config.json", "diagnostics.csv", "diagnostics.jsonl"]
    assert main(["sweep", *SWEEP_ARGS, "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert f"[1/2] {SWEEP_CELLS[0]}: skipped (completed" in cap.out
    assert f"[2/2] {SWEEP_CELLS[1]}: resumed, acc" in cap.out
    assert "starting from epoch 0" in cap.err and "coreaug: error" not in cap.err
    for cell in SWEEP_CELLS:
        _assert_same_cell(out / cell, ref / cell, epochs=2)
    keys = ["method", "selector", "fraction", "seed", "final_acc", "best_acc"]
    runs, ref_runs = (pd.read_csv(d / "report" / "runs.csv") for d in (out, ref))
    assert runs[keys].equals(ref_runs[keys]) and len(runs) == len(SWEEP_CELLS)


# ------------------------------------------------------------------------------------------ Ctrl-C
CTRL_C_ARGS = [*ARGS[:ARGS.index("--epochs")], "--epochs", "2", *ARGS[ARGS.index("--epochs") + 2:],
               "--diagnostics-every", "0"]
CTRL_C_SEED = 21  # the moments are random, but the same on every run of the suite


def _start_ctrl_c_victim(out: Path, sentinel: Path) -> subprocess.Popen:
    """``coreaug train`` that pauses (alive) at the end of epoch 1, so it cannot finish before the Ctrl-C."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "COREAUG_PAUSE_AT": "epoch:end#1",
           "COREAUG_PAUSE_FILE": str(sentinel), "COREAUG_PAUSE_TIMEOUT": "300"}
    return subprocess.Popen([sys.executable, "-m", "coreaug", "train", *CTRL_C_ARGS, "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=out.parent,
                            preexec_fn=_default_sigint)  # as from a terminal, even when pytest runs in the background


def _default_sigint() -> None:
    """In the child before exec: SIGINT's default action (a background job inherits it ignored, and keeps it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(proc: subprocess.Popen) -> str:
    """Send Ctrl-C (SIGINT) and return the victim's stderr; it must end with exit code 130."""
    assert proc.poll() is None, "the victim ended before the Ctrl-C"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()[-2000:]
    return err.decode()


def test_ctrl_c_at_random_start_up_moments_is_one_line_and_the_original_command_resumes(tmp_path, capsys):
    """Ctrl-C 0.3–1.5 s after launch (importing torch, building the parser, loading data, …; seeded moments)
    and once mid-run: always exactly ``coreaug: interrupted``, exit 130 (no traceback, no C++ abort, never
    ignored). The documented recovery (docs/reliability.md) — rerun the original command with ``--resume`` — then finishes every
    run equal to an uninterrupted one, whether the folder, config.json or a checkpoint existed or not."""
    import random

    moments = [random.Random(CTRL_C_SEED).uniform(0.3, 1.5) for _ in range(3)]
    victims = []
    for i, delay in enumerate(moments):  # one at a time: each moment is measured from its own launch
        out, sentinel = tmp_path / f"ctrl_c{i}", tmp_path / f"ctrl_c{i}.paused"
        proc = _start_ctrl_c_victim(out, sentinel)
        time.sleep(delay)
        assert _interrupt(proc) == "coreaug: interrupted\n", f"Ctrl-C {delay:.2f} s after launch"
        victims.append(out)
    out, sentinel = tmp_path / "ctrl_c_mid_run", tmp_path / "ctrl_c_mid_run.paused"
    proc = _start_ctrl_c_victim(out, sentinel)
    _wait_paused(proc, sentinel)
    assert _interrupt(proc) == "coreaug: interrupted\n"
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    victims.append(out)
    ref = tmp_path / "reference"
    assert main(["train", *CTRL_C_ARGS, "--out", str(ref)]) == 0
    capsys.readouterr()
    for out in victims:
        assert main(["train", *CTRL_C_ARGS, "--resume", "--out", str(out)]) == 0, out.name
        assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in ref.iterdir())
        a, b = load_checkpoint(out / "checkpoint.pt"), load_checkpoint(ref / "checkpoint.pt")
        assert a["epoch"] == b["epoch"] == 2 and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        assert _rows(out) == _rows(ref)
    assert "Traceback" not in capsys.readouterr().err
