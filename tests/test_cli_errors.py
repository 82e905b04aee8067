"""Every sub-command over a table of bad inputs: exit 2, one stderr line (usage errors: a usage line plus
one error line), no traceback, nothing left behind. Plus the run-folder lock, strict JSON, divergence,
``select --force``, resume edge cases and Ctrl-C during import."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from coreaug.cli import main
from coreaug.errors import OutputError, RunFolderBusyError
from coreaug.io import dumps_json, load_checkpoint, write_json_atomic
from coreaug.runlock import LOCK_NAME, acquire_run_lock

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--preset", "digits-quick", "--model", "mlp", "--epochs", "1", "--fraction", "0.1",
         "--strong-aug", "gaussian-noise", "--batch-size", "64", "--quiet", "--threads", "1"]


def strict_loads(text: str):
    """``json.loads`` that rejects the non-standard constants NaN / Infinity / -Infinity."""
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def _one_error_line(capsys, match: str) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("coreaug: error: "), err
    assert match in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """One finished 1-epoch digits run, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    return out


def _setup(tmp: Path, finished: Path) -> dict[str, str]:
    """Files the table refers to: a file in the way, damaged config.json files, bad config files."""
    (tmp / "afile").write_text("not a folder")
    (tmp / "exists.json").write_text("{}")
    (tmp / "adir.json").mkdir()
    for name, data in {"empty": b"", "corrupt": b'{"epochs": 1,', "latin1": b'{"notes": "caf\xe9"}',
                       "list": b"[1, 2]"}.items():
        (tmp / name).mkdir()
        (tmp / name / "config.json").write_bytes(data)
    (tmp / "opts5.yaml").write_text("preset: digits-quick\ndata_options: 5\n")
    (tmp / "latin1.yaml").write_bytes(b"preset: digits-quick\nnotes: caf\xe9\n")
    (tmp / "unf" / "half").mkdir(parents=True)  # an unfinished run: config.json but no results.json
    (tmp / "unf" / "half" / "config.json").write_text((finished / "config.json").read_text())
    bad = tmp / "bad_state.pt"
    torch.save({"model": {"fc.weight": torch.zeros(3, 3), "extra.bias": torch.zeros(2)}}, bad)
    return {"T": str(tmp), "RUN": str(finished)}


# (sub-command argv with {T} = a temp folder and {RUN} = a finished run, expected text in the error line)
ONE_LINE_ERRORS = [
    # train
    ([*TRAIN, "--out", "{T}/afile/sub"], "afile is a file"),
    ([*TRAIN, "--out", "{T}/afile"], "afile is a file"),
    (["train", "--resume", "--out", "{T}/empty"], "cannot parse config file"),
    (["train", "--resume", "--out", "{T}/corrupt"], "cannot parse config file"),
    (["train", "--resume", "--out", "{T}/latin1"], "not UTF-8"),
    (["train", "--resume", "--out", "{T}/list"], "must hold a mapping"),
    (["train", "--resume", "--out", "{T}/nope"], "does not exist"),
    (["train", "--config", "{T}/opts5.yaml", "--out", "{T}/o"], "data_options must be a mapping"),
    (["train", "--config", "{T}/latin1.yaml", "--out", "{T}/o"], "not UTF-8"),
    ([*TRAIN, "--seed", "99999999999999999999999", "--out", "{T}/o"], "seed must be an integer in [0, 2^63)"),
    ([*TRAIN, "--seed", "-1", "--out", "{T}/o"], "seed must be an integer in [0, 2^63)"),
    ([*TRAIN, "--threads", "100000", "--out", "{T}/o"], "threads must be in [1, 1024]"),
    ([*TRAIN, "--num-workers", "-1", "--out", "{T}/o"], "num_workers must be"),
    ([*TRAIN, "--lr", "nan", "--out", "{T}/o"], "lr must be finite"),
    ([*TRAIN, "--out", "{RUN}"], "is not empty"),
    ([*TRAIN, "--lr", "0.5", "--resume", "--out", "{RUN}"], "another configuration"),
    # select
    (["select", "--batch-size", "0", "--out", "{T}/s.json"], "--batch-size must be a positive integer"),
    (["select", "--num-workers", "-1", "--out", "{T}/s.json"], "--num-workers must be an integer >= 0"),
    (["select", "--seed", str(2**63), "--out", "{T}/s.json"], "--seed must be in [0, 2^63)"),
    (["select", "--proxy", "weight", "--proj-dim", "0", "--out", "{T}/s.json"], "--proj-dim must be a positive"),
    (["select", "--proj-dim", "4", "--out", "{T}/s.json"], "pass it with --proxy weight"),
    (["select", "--out", "{T}/afile/s.json"], "afile is a file"),
    (["select", "--out", "{T}/exists.json"], "already exists; pass --force"),
    (["select", "--out", "{RUN}/checkpoint.pt"], "already exists; pass --force"),
    (["select", "--out", "{T}/adir.json", "--force"], "is a folder"),
    (["select", "--out", "{T}/s.txt"], "--out must end in"),
    (["select", "--model", "mlp", "--checkpoint", "{T}/bad_state.pt", "--out", "{T}/s.json"],
     "3 missing key(s) (features.1.weight, features.1.bias, fc.bias); 1 unexpected key(s) (extra.bias); "
     "1 key(s) of another shape (fc.weight (3, 3) vs (10, 128))"),
    # spectra
    (["spectra", "-n", "8", "--rank", "0", "--out", "{T}/sp"], "--rank must be a positive integer"),
    (["spectra", "-n", "8", "--rank", "-2", "--out", "{T}/sp"], "--rank must be a positive integer"),
    (["spectra", "-n", "8", "--rank", "100000", "--out", "{T}/sp"], "--rank must be in [1, 7]"),
    (["spectra", "-n", "8", "--seed", str(2**63), "--out", "{T}/sp"], "--seed must be in [0, 2^63)"),
    (["spectra", "-n", "8", "--out", "{T}/afile"], "afile is a file"),
    (["spectra", "-n", "8", "--out", "{T}/afile/sub"], "afile is a file"),
    # report
    (["report", "{T}/nope", "--out", "{T}/rep"], "does not exist"),
    (["report", "{RUN}", "--out", "{T}/afile"], "afile is a file"),
    (["report", "{T}/unf", "--out", "{T}/rep"], "1 unfinished run(s) without results.json skipped"),
    # figures
    (["figures", "--runs", "{T}/nope", "--out", "{T}/figs"], "does not exist"),
    (["figures", "--runs", "{RUN}", "--out", "{T}/afile"], "afile is a file"),
    (["figures", "--seed", "-1", "--out", "{T}/figs"], "--seed must be in [0, 2^63)"),
    # info
    (["info", "--device", "tpu"], "device"),
]

USAGE_ERRORS = [
    (["nope"], "invalid choice: 'nope'"),
    ([*TRAIN, "--fraction", "abc"], "argument --fraction: invalid float value: 'abc'"),
    (["train", "--seed", "1.5"], "argument --seed: invalid int value"),
    (["select"], "the following arguments are required: --out"),
    (["select", "--out", "x.json", "--batch-size", "many"], "argument --batch-size: invalid int value"),
    (["spectra", "--rank", "ten"], "argument --rank: invalid int value"),
    (["report"], "the following arguments are required: RUN_DIR"),
    (["figures", "--only", "fig9"], "argument --only: invalid choice"),
    (["info", "--bogus"], "unrecognized arguments: --bogus"),
]


def test_bad_inputs_one_line_exit_2(tmp_path, capsys, finished_run):
    """The table above, in-process: exit 2, exactly one stderr line, no traceback, no stray output folder."""
    subs = _setup(tmp_path, finished_run)
    before_run = {p.name: p.read_bytes() for p in finished_run.iterdir()}
    for argv, match in ONE_LINE_ERRORS:
        args = [a.format(**subs) for a in argv]
        rc = main(args)
        assert rc == 2, args
        _one_error_line(capsys, match)
    # nothing was created for the failing commands, and the finished run is untouched
    assert not any((tmp_path / name).exists() for name in ("o", "s.json", "sp", "rep", "figs", "nope"))
    assert {p.name: p.read_bytes() for p in finished_run.iterdir()} == before_run


@pytest.mark.parametrize("argv, match", USAGE_ERRORS)
def test_usage_errors_are_two_lines(capsys, argv, match):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("usage: coreaug") and "--help" in lines[0]
    assert lines[1].startswith("coreaug: error: ") and match in lines[1]


def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["select", "--help"])
    assert exc.value.code == 0
    assert "--force" in capsys.readouterr().out


def test_default_run_folder_blocked_by_files(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "digits-quick").write_text("a file where the default run folder would go")
    assert main(TRAIN) == 0  # skips to the next free name
    assert (tmp_path / "runs" / "digits-quick-2" / "results.json").is_file()
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    (other / "runs").write_text("runs is a file")
    assert main(TRAIN) == 2
    _one_error_line(capsys, "runs is a file")


def test_default_run_folder_taken_by_a_concurrent_run(tmp_path, monkeypatch, capsys):
    """Two runs started together pick the same default folder: the one that finds it locked moves on."""
    import fcntl

    import coreaug.commands.train as train_cmd

    monkeypatch.chdir(tmp_path)
    taken = tmp_path / "runs" / "digits-quick"
    taken.mkdir(parents=True)
    fd = os.open(taken / LOCK_NAME, os.O_RDWR | os.O_CREAT)  # the other run, mid-way
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    real, calls = train_cmd._fresh_run_dir, []

    def racing(args, *a):  # the first call sees the folder as free (the race), later ones see the truth
        calls.append(1)
        return Path("runs/digits-quick") if len(calls) == 1 else real(args, *a)

    monkeypatch.setattr(train_cmd, "_fresh_run_dir", racing)
    try:
        assert main(TRAIN) == 0
    finally:
        os.close(fd)
    assert "-> runs/digits-quick-2" in capsys.readouterr().out and len(calls) == 2
    assert (tmp_path / "runs" / "digits-quick-2" / "results.json").is_file()
    assert sorted(p.name for p in taken.iterdir()) == [LOCK_NAME]  # the other run's folder untouched


def test_permission_denied_is_one_line(tmp_path, monkeypatch, capsys):
    """A read-only output folder (simulated: the tests may run as root, who may write anywhere)."""
    real_open = os.open

    def deny_lock(path, *a, **kw):
        if str(path).endswith(LOCK_NAME):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *a, **kw)

    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setattr(os, "open", deny_lock)
    assert main([*TRAIN, "--out", str(ro)]) == 2
    _one_error_line(capsys, f"cannot write run folder {ro}: permission denied")
    monkeypatch.undo()

    import tempfile

    def deny_mkstemp(*a, **kw):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", deny_mkstemp)
    assert main(["select", "--method", "random", "--out", str(ro / "s.json")]) == 2
    _one_error_line(capsys, f"cannot write {ro / 's.json'}: permission denied")
    if os.geteuid() != 0:  # a real read-only folder where permissions apply
        monkeypatch.undo()
        ro.chmod(0o555)
        try:
            assert main(["select", "--method", "random", "--out", str(ro / "s.json")]) == 2
            _one_error_line(capsys, "permission denied")
        finally:
            ro.chmod(0o755)


def test_disk_full_keeps_previous_checkpoint(tmp_path, monkeypatch, capsys):
    import coreaug.io as io_mod

    out = tmp_path / "run"
    real_fsync, calls = os.fsync, {"n": 0}

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").split("/")[-1].startswith(".checkpoint.pt."):
            calls["n"] += 1
            if calls["n"] == 2:  # the second epoch's checkpoint: the disk is full
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(io_mod.os, "fsync", fsync)
    assert main([*TRAIN, "--epochs", "2", "--out", str(out)]) == 2
    _one_error_line(capsys, f"cannot write {out / 'checkpoint.pt'}: no space left on device; "
                            "the previous checkpoint.pt is unchanged")
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    assert not list(out.glob(".*.tmp")) and not (out / LOCK_NAME).exists()


def test_write_json_is_strict(tmp_path):
    import numpy as np

    obj = {"nan": float("nan"), "inf": [float("inf"), -float("inf"), 1.5], "t": torch.tensor([float("nan"), 2.0]),
           "np": np.array([np.inf, 3.0], dtype=np.float32), "np_scalar": np.float64("nan"), "p": tmp_path, "ok": 1}
    write_json_atomic(tmp_path / "x.json", obj)
    back = strict_loads((tmp_path / "x.json").read_text())
    assert back == {"nan": None, "inf": [None, None, 1.5], "t": [None, 2.0], "np": [None, 3.0], "np_scalar": None,
                    "p": str(tmp_path), "ok": 1}
    assert strict_loads(dumps_json([float("nan")])) == [None]
    with pytest.raises(ValueError, match="non-strict"):
        strict_loads('{"a": NaN}')  # the parser used here does reject bare NaN


def test_divergence_stops_with_one_line_or_continues_with_strict_json(tmp_path, capsys):
    out = tmp_path / "div"
    assert main([*TRAIN, "--lr", "1e30", "--epochs", "2", "--out", str(out)]) == 2
    _one_error_line(capsys, "training loss became nan in epoch 1: stopped, no checkpoint was written")
    assert not (out / "results.json").exists() and not (out / "checkpoint.pt").exists()
    # --resume starts from epoch 0 with the saved config; --allow-nonfinite keeps training
    assert main(["train", "--resume", "--allow-nonfinite", "--quiet", "--out", str(out)]) == 0
    assert "starting from epoch 0 with its config.json" in capsys.readouterr().err
    res = strict_loads((out / "results.json").read_text())
    assert res["completed"] and res["final_train_loss"] is None and res["epochs_done"] == 2
    rows = [strict_loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_loss"] for r in rows] == [None, None]
    strict_loads((out / "config.json").read_text())


def test_divergence_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    from coreaug.errors import DivergenceError
    from coreaug.train import loop, resolve_config, trainer

    cfg = resolve_config("digits-quick", overrides={"model": "mlp", "epochs": 3, "fraction": 0.1, "device": "cpu",
                                                    "strong_aug": "gaussian-noise", "batch_size": 64, "threads": 1})
    real, broken = trainer.weighted_loss, {"on": False}
    monkeypatch.setattr(trainer, "weighted_loss",
                        lambda *a, **k: real(*a, **k) * (float("inf") if broken["on"] else 1.0))  # epoch 2 blows up
    saved = {}

    def after_epoch(row):
        saved["bytes"] = (tmp_path / "r" / "checkpoint.pt").read_bytes()
        broken["on"] = True

    with pytest.raises(DivergenceError, match=r"became (inf|nan) in epoch 2: stopped, the last good checkpoint "
                                              r"\(epoch 1\) is kept"):
        loop.train(cfg, tmp_path / "r", quiet=True, on_epoch_end=after_epoch)
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == saved["bytes"]
    assert load_checkpoint(tmp_path / "r" / "checkpoint.pt")["epoch"] == 1
    assert not (tmp_path / "r" / "results.json").exists() and not (tmp_path / "r" / LOCK_NAME).exists()


def test_select_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "sel.json"
    out.write_text("precious")
    argv = ["select", "--method", "random", "--fraction", "0.05", "--out", str(out)]
    assert main(argv) == 2
    _one_error_line(capsys, "already exists; pass --force")
    assert out.read_text() == "precious"
    assert main([*argv, "--force"]) == 0
    assert len(strict_loads(out.read_text())["indices"]) > 0


def test_report_names_skipped_unfinished_runs(tmp_path, capsys, finished_run):
    import shutil

    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(finished_run, root / "done")
    (root / "stopped").mkdir()
    (root / "stopped" / "config.json").write_text((finished_run / "config.json").read_text())
    assert main(["report", str(root), "--out", str(tmp_path / "rep"), "--quiet"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [f"coreaug: note: 1 unfinished run(s) without results.json skipped: {root / 'stopped'}"]


def test_figures_bad_runs_leave_no_output_folder(tmp_path, capsys):
    assert main(["figures", "--only", "fig5_accuracy_vs_time", "--runs", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "figs")]) == 2
    _one_error_line(capsys, "does not exist")
    assert not (tmp_path / "figs").exists()


# ------------------------------------------------------------------ run folder lock and resume


def test_lock_names_holder_and_cleans_stale_temp_files(tmp_path, capsys):
    import fcntl

    run = tmp_path / "run"
    run.mkdir()
    for stale in (".checkpoint.pt.ab12cd_9.tmp", ".metrics.csv.zzzzzzzz.tmp"):
        (run / stale).write_bytes(b"half-written")
    (run / ".notes.tmp").write_text("not ours")  # not an atomic-write temp file: kept
    # a foreign holder (its own open file description conflicts even within this process)
    fd = os.open(run / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b"4242\n")
    try:
        with pytest.raises(RunFolderBusyError, match="in use by another run \\(PID 4242\\)"):
            acquire_run_lock(run)
        assert main([*TRAIN, "--resume", "--out", str(run)]) == 2
        _one_error_line(capsys, f"run folder {run} is in use by another run (PID 4242)")
        assert (run / ".checkpoint.pt.ab12cd_9.tmp").exists()  # untouched while somebody holds the lock
    finally:
        os.close(fd)  # the holder dies: its lock goes with it
    with acquire_run_lock(run) as lock:
        assert (run / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        assert sorted(lock.removed_temp) == [".checkpoint.pt.ab12cd_9.tmp", ".metrics.csv.zzzzzzzz.tmp"]
        assert acquire_run_lock(run) is lock  # re-entrant within one process
        lock.release()
        assert (run / LOCK_NAME).exists()
    assert sorted(p.name for p in run.iterdir()) == [".notes.tmp"]  # lock file removed on release
    new = tmp_path / "a" / "b"
    acquire_run_lock(new).release()
    assert not (tmp_path / "a").exists()  # folders the lock created are removed when left empty
    with pytest.raises(OutputError, match="afile is a file"):
        (tmp_path / "afile").write_text("x")
        acquire_run_lock(tmp_path / "afile" / "run")


def test_resume_threads_warning_and_finished_run_untouched(tmp_path):
    from coreaug.train import resolve_config, train

    cfg = resolve_config("digits-quick", overrides={"model": "mlp", "epochs": 2, "fraction": 0.1, "device": "cpu",
                                                    "strong_aug": "gaussian-noise", "batch_size": 64, "threads": 1})
    out = tmp_path / "r"
    train(cfg, out, quiet=True, stop_after_epoch=1)
    assert load_checkpoint(out / "checkpoint.pt")["threads"] == 1
    cfg.threads = 2
    with pytest.warns(UserWarning, match="resuming with 2 torch threads, but the checkpoint was written with 1"):
        res = train(cfg, out, resume=True, quiet=True)
    st = (out / "results.json").stat()
    before = (out / "results.json").read_bytes()
    cfg.threads = 1
    again = train(cfg, out, resume=True, quiet=True)  # finished: nothing is rewritten
    after = (out / "results.json").stat()
    assert (after.st_ino, after.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert (out / "results.json").read_bytes() == before and again == strict_loads(before.decode())
    assert again["final_test_acc"] == res["final_test_acc"]


def test_ctrl_c_while_importing_is_one_line():
    """Ctrl-C while main() imports torch (the CLI module itself imports no torch) is one line, exit 130.

    The interrupt is raised deterministically by an import hook at the first torch import, rather
    than by a timer, so the test does not depend on machine load.
    """
    code = (
        "import builtins, sys\n"
        "from coreaug.cli import main\n"
        "assert 'torch' not in sys.modules, 'coreaug.cli must not import torch at import time'\n"
        "real_import = builtins.__import__\n"
        "def interrupting_import(name, *args, **kwargs):\n"
        "    if name == 'torch' or name.startswith('torch.'):\n"
        "        raise KeyboardInterrupt\n"
        "    return real_import(name, *args, **kwargs)\n"
        "builtins.__import__ = interrupting_import\n"
        "sys.exit(main(['info']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "coreaug: interrupted\n"


def test_central_handler_classifies_errors(monkeypatch, capsys):
    """One place turns user errors from any command into one line; a bug keeps its traceback."""
    import coreaug.commands.info as info_cmd

    cases = [
        (OSError(errno.EROFS, "Read-only file system", "out/x.json"), "coreaug: error: out/x.json: read-only file system"),
        (ValueError("bad value\nsecond line"), "coreaug: error: ValueError: bad value second line (COREAUG_DEBUG=1"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "coreaug: error: UnicodeDecodeError:"),
        (MemoryError(), "coreaug: error: out of memory; try a smaller --batch-size"),
    ]
    for exc, start in cases:
        def boom(args, exc=exc):
            raise exc

        monkeypatch.setattr(info_cmd, "run", boom)
        assert main(["info"]) == 2
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(start), lines

    def bug(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(info_cmd, "run", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["info"])
    monkeypatch.setattr(info_cmd, "run", lambda args: (_ for _ in ()).throw(ValueError("x")))
    monkeypatch.setenv("COREAUG_DEBUG", "1")
    with pytest.raises(ValueError):
        main(["info"])
