"""Launchers of ``coreaug sweep``: several grid cells at once on this machine, or on a SLURM cluster.

:func:`coreaug.sweep.run_sweep` runs a plan in its own process, one cell after another. A launcher runs the
same plan by the same rules (skip completed cells, resume interrupted ones, report a failed cell in one line
and go on, stop on a missing dataset, write the report once after all cells):

* :class:`LocalJobs` (``coreaug sweep --jobs N``): N cells at a time, one child process per job slot
  (``python -m coreaug.launch``) that trains cell after cell with :func:`run_cell`, so a grid of short cells
  pays Python's and torch's start-up once per slot, not once per cell. With GPUs each child sees one
  (``CUDA_VISIBLE_DEVICES``, round-robin over the job slots); the CPU threads are split among the jobs
  (``max(1, cores // N)`` per job) unless the grid fixes ``threads``. Ctrl-C forwards one SIGINT to each
  child (each keeps its last checkpoint and frees its run folder) and ends the sweep.
* :class:`SubmititLauncher` (``--launcher submitit``, alias ``slurm``): one SLURM job per cell through
  `submitit <https://github.com/facebookincubator/submitit>`_ (``pip install -e ".[submitit]"``), with
  ``--slurm-partition``, ``--slurm-time`` and ``--slurm-gpus``; a job that times out or is preempted is
  requeued and resumes from its checkpoint. ``--launcher submitit-local`` uses submitit's local executor
  (each job a process on this machine): the same code path without a cluster, used by the tests.

In every case the cell's run folder lock (:mod:`coreaug.runlock`, taken by :func:`coreaug.train.train` in
the job) keeps two jobs off one cell, and the sweep lock of ``OUT`` is held by the sweep for the whole time.
Results do not depend on the launcher: a CPU cell with the same seed and thread count is bit-identical.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from coreaug.errors import ConfigError, DatasetNotFoundError, first_line
from coreaug.runfolder import RunFolder

#: ``--launcher`` values: ``local`` (this process, or ``--jobs N`` child processes), ``submitit`` / ``slurm``
#: (SLURM through submitit), ``submitit-local`` (submitit's local executor: tests, a machine without SLURM).
LAUNCHERS: tuple[str, ...] = ("local", "submitit", "slurm", "submitit-local")
#: Minutes a SLURM job may run when neither ``--slurm-time`` nor the grid file says (then it is requeued).
DEFAULT_SLURM_MINUTES = 240
#: Seconds the children get to stop after a Ctrl-C (each SIGINT'ed once) before they are killed.
STOP_GRACE_S = 30.0
#: Keys of a cell's results the sweep reports (the rest stays in the cell's results.json).
_RESULT_KEYS: tuple[str, ...] = ("completed", "epochs_done", "final_test_acc", "wall_clock_total",
                                 "selection_time_total")
SUBMITIT_HINT = 'pip install -e ".[submitit]"'


# --------------------------------------------------------------------------------- one cell (the job side)
def cell_task(p: Any, *, threads: int | None = None, device: str | None = None) -> dict[str, Any]:
    """What a job needs to train planned run ``p``: its resolved config (``threads``/``device`` replaced where
    given: neither enters the config hash), its folder and whether train resumes."""
    from coreaug.sweep import resume_flag

    config = p.cfg.to_dict()
    if threads is not None:
        config["threads"] = threads
    if device is not None:
        config["device"] = device
    return {"config": config, "out": str(Path(p.dir).resolve()), "resume": resume_flag(p)}


def run_cell(task: Mapping[str, Any]) -> dict[str, Any]:
    """Train one cell; never raises for a failed run (``KeyboardInterrupt`` excepted).

    Returns ``{"results": {...}}`` (the sweep's keys of results.json) or ``{"error": "TypeName", "message":
    "first line"}``."""
    try:
        from coreaug.train import train
        from coreaug.train.config import config_from_dict

        cfg = config_from_dict(task["config"])
        res = train(cfg, Path(task["out"]), resume=bool(task["resume"]), quiet=True)
    except Exception as exc:  # noqa: BLE001 - reported by the sweep in one line
        return {"error": type(exc).__name__, "message": first_line(exc)}
    return {"results": {k: res.get(k) for k in _RESULT_KEYS}}


class CellJob:
    """The callable a submitit job runs: :func:`run_cell`. Checkpointable: on a SLURM timeout or preemption
    submitit calls :meth:`checkpoint` and requeues the job, which then resumes from the cell's checkpoint."""

    def __call__(self, task: Mapping[str, Any]) -> dict[str, Any]:
        return run_cell(task)

    def checkpoint(self, task: Mapping[str, Any]) -> Any:
        from submitit.helpers import DelayedSubmission

        out = Path(task["out"])
        again = RunFolder(out).started()
        return DelayedSubmission(CellJob(), {**task, "resume": bool(task["resume"]) or again})


def main() -> int:
    """``python -m coreaug.launch``: a worker of :class:`LocalJobs`. It reads one task a line (JSON, with the
    path of its ``outcome`` file) from stdin, trains the cell with :func:`run_cell`, writes the outcome there
    (atomically) and waits for the next; it ends at end of input. Ctrl-C: ``coreaug: interrupted``, exit 130;
    the process ends with the sweep that started it."""
    from coreaug.cli import _exit_interrupted, end_process

    _end_with_parent()
    # the sweep stops its workers with SIGINT (they are in a session of their own: no terminal's Ctrl-C reaches
    # them), even where the sweep inherited SIGINT ignored (a background job) and so did they
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        from coreaug.io import write_json_atomic

        for line in sys.stdin:
            if line.strip():
                task = json.loads(line)
                write_json_atomic(task["outcome"], run_cell(task))
    except KeyboardInterrupt:
        _exit_interrupted()
    end_process(0)
    return 0


def _end_with_parent() -> None:
    """Linux: have the kernel kill this child when the sweep process dies (a second Ctrl-C ends the sweep at
    once; its run folders survive SIGKILL). Elsewhere a no-op."""
    parent = os.environ.get("COREAUG_SWEEP_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    if str(os.getppid()) != parent:  # the parent died before prctl
        os._exit(137)


# ------------------------------------------------------------------------------------- checks and choices
def check_jobs(jobs: Any) -> int | None:
    """``--jobs``: ``None`` or an integer >= 1 (else a one-line ConfigError)."""
    if jobs is None:
        return None
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs must be an integer >= 1 (cells run at once), got {jobs!r}")
    return jobs


def check_launcher(name: str) -> str:
    """A known launcher whose tools are here: submitit importable, SLURM's ``sbatch`` on PATH for ``submitit``/
    ``slurm``; raise a one-line ConfigError otherwise. Returns the canonical name."""
    if name not in LAUNCHERS:
        raise ConfigError(f"unknown launcher {name!r}; choose one of: {', '.join(LAUNCHERS)}")
    name = "submitit" if name == "slurm" else name
    if name.startswith("submitit"):
        import_submitit()
    if name == "submitit" and shutil.which("sbatch") is None:
        raise ConfigError("--launcher submitit sends cells to SLURM, but there is no 'sbatch' on PATH: run the sweep "
                          "on a SLURM login node, or use --jobs N (this machine) or --launcher submitit-local")
    return name


def import_submitit() -> Any:
    """The submitit module, or a one-line ConfigError naming the extra that installs it."""
    try:
        import submitit
    except ImportError:
        raise ConfigError(f"--launcher submitit needs the optional package submitit: {SUBMITIT_HINT}") from None
    return submitit


def parse_slurm_time(value: Any) -> int:
    """A SLURM time limit → whole minutes: ``90`` (minutes), ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``,
    ``D-HH:MM:SS``; raise a one-line ConfigError otherwise."""
    text = str(value).strip()
    if not isinstance(value, bool):
        m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
        if m:
            d, a, b, c = (int(g) if g is not None else None for g in m.groups())
            if d is None:  # M | M:S | H:M:S
                seconds = a * 60 if b is None else (a * 60 + b if c is None else a * 3600 + b * 60 + c)
            else:  # D-H | D-H:M | D-H:M:S
                seconds = d * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
            if seconds > 0:
                return -(-seconds // 60)
    raise ConfigError(f"bad --slurm-time {value!r}: use minutes (90) or [D-]HH:MM:SS (e.g. 4:00:00, 1-00:00:00)")


def check_slurm_gpus(value: Any) -> int:
    """``--slurm-gpus``: GPUs per job, an integer >= 0."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"--slurm-gpus must be an integer >= 0 (GPUs per job), got {value!r}")
    return value


def visible_gpus() -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` value of each GPU this process sees (``torch.cuda.device_count()``; its own
    ``CUDA_VISIBLE_DEVICES``, where set, names them); empty without GPUs."""
    import torch

    count = torch.cuda.device_count()
    if count == 0:
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [x.strip() for x in env.split(",") if x.strip()] if env else []
    return names[:count] if len(names) >= count else [str(i) for i in range(count)]


# ------------------------------------------------------------------------------ the one loop of every launcher
class Launcher:
    """How a sweep's cells run. :meth:`run` is the one loop every launcher shares: settle the cells that need
    no training, start cells while there is room, collect those that ended, stop every cell in flight on an
    error or Ctrl-C. A launcher says how: :meth:`has_room`, :meth:`start`, :meth:`collect`, :meth:`busy`,
    :meth:`stop` and, around the loop, :meth:`session` (:class:`InProcess`, :class:`LocalJobs`,
    :class:`SubmititLauncher`)."""

    poll_s: float = 0.1

    def run(self, planned: Sequence[Any], tally: Any, deadline: float | None) -> None:
        """Run the plan; results go to ``tally`` (:class:`coreaug.sweep.SweepTally`)."""
        queue = deque(p for p in planned if not tally.settle(p, None))
        if not queue:
            return
        with self.session():
            try:
                while queue or self.busy():
                    while queue and self.has_room():
                        p = queue.popleft()
                        if not tally.settle(p, deadline):  # past the deadline: not started
                            self.start(p, tally)
                    if not self.collect(tally):
                        time.sleep(self.poll_s)
            except BaseException:  # Ctrl-C, a missing dataset, a bug: the cells in flight stop first
                self.stop()
                raise

    def session(self) -> contextlib.AbstractContextManager:
        """What the loop runs inside (a scratch folder, …); its normal exit ends the launcher's processes."""
        return contextlib.nullcontext()

    def has_room(self) -> bool:
        """Whether another cell can start now."""
        raise NotImplementedError

    def start(self, p: Any, tally: Any) -> None:
        """Start planned run ``p`` (log that it started)."""
        raise NotImplementedError

    def collect(self, tally: Any) -> bool:
        """Record the cells that ended (:func:`record_outcome`); True when any did (else the loop waits)."""
        raise NotImplementedError

    def busy(self) -> bool:
        """Whether cells are in flight."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the cells in flight, keeping their checkpoints."""


@dataclass
class InProcess(Launcher):
    """One cell after another in this process (``coreaug sweep`` without ``--jobs``/``--launcher``): ``train_fn``
    (default :func:`coreaug.train.train`) with ``quiet`` runs."""

    train_fn: Any = None
    quiet: bool = True

    def has_room(self) -> bool:
        return True

    def busy(self) -> bool:
        return False

    def collect(self, tally: Any) -> bool:
        return True  # each cell ended in start()

    def start(self, p: Any, tally: Any) -> None:
        from coreaug.sweep import resume_flag

        train_fn = self.train_fn
        if train_fn is None:
            from coreaug.train import train as train_fn
        resume = resume_flag(p)
        t = time.perf_counter()
        try:
            res = train_fn(p.cfg, p.dir, resume=resume, quiet=self.quiet)
        except DatasetNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - one line; the sweep goes on
            tally.fail(p, type(exc).__name__, first_line(exc))
            return
        tally.finish(p, res, resumed=resume, seconds=time.perf_counter() - t)


# --------------------------------------------------------------------------------- N child processes here
@dataclass
class _Cell:
    """A cell a worker is training."""

    plan: Any
    outcome: Path
    started: float
    resumed: bool
    log_offset: int


@dataclass
class _Worker:
    """One job slot's child process (``python -m coreaug.launch``), reused for cell after cell so that the
    imports are paid once per slot; restarted where it died."""

    slot: int
    proc: subprocess.Popen
    log: Path
    where: str
    gpu: str | None = None
    cell: _Cell | None = None


@dataclass
class LocalJobs(Launcher):
    """Run the cells ``jobs`` at a time on this machine, each job slot a child process (``python -m
    coreaug.launch``) that trains one cell after another (a cell that kills its process fails alone: the
    slot gets a new process).

    ``threads``: CPU threads given to every cell (``None``: each cell's own config); ``gpus``: the
    ``CUDA_VISIBLE_DEVICES`` values handed out round-robin over the job slots (``None``: :func:`visible_gpus`).
    """

    jobs: int
    threads: int | None = None
    gpus: list[str] | None = None
    python: str = sys.executable
    poll_s: float = 0.1
    grace_s: float = STOP_GRACE_S
    _workers: dict[int, _Worker] = field(default_factory=dict, repr=False)
    _tmp: Path | None = field(default=None, repr=False)
    _gpus: list[str] = field(default_factory=list, repr=False)

    @contextlib.contextmanager
    def session(self):
        with tempfile.TemporaryDirectory(prefix="coreaug-jobs-") as tmp:
            self._tmp = Path(tmp)
            self._gpus = visible_gpus() if self.gpus is None else list(self.gpus)
            yield
            self.close()

    def _idle_slot(self) -> int | None:
        return next((slot for slot in range(self.jobs)
                     if self._workers.get(slot) is None or self._workers[slot].cell is None), None)

    def has_room(self) -> bool:
        return self._idle_slot() is not None

    def busy(self) -> bool:
        return any(w.cell for w in self._workers.values())

    def start(self, p: Any, tally: Any) -> None:
        """Give ``p`` to an idle job slot, whose process is started (again, where it died) first."""
        slot = self._idle_slot()
        worker = self._workers.get(slot)
        if worker is None or worker.proc.poll() is not None:
            worker = self._workers[slot] = self._spawn(slot, self._tmp, self._gpus)
        self._send(worker, p, self._tmp, tally)

    def _spawn(self, slot: int, tmp: Path, gpus: list[str]) -> _Worker:
        env = dict(os.environ, COREAUG_SWEEP_PID=str(os.getpid()), PYTHONUNBUFFERED="1")
        where = [f"job {slot + 1}/{self.jobs}"]
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
            where.append(f"GPU {env['CUDA_VISIBLE_DEVICES']}")
        if self.threads is not None:
            where.append(f"{self.threads} thread{'s' if self.threads != 1 else ''}")
            for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env.setdefault(var, str(self.threads))
        log = tmp / f"job{slot + 1}.log"
        with open(log, "ab") as fh:
            proc = subprocess.Popen([self.python, "-m", "coreaug.launch"], stdin=subprocess.PIPE, stdout=fh,
                                    stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)  # a terminal's Ctrl-C reaches the sweep only
        return _Worker(slot, proc, log, ", ".join(where), env.get("CUDA_VISIBLE_DEVICES") if gpus else None)

    def _send(self, worker: _Worker, p: Any, tmp: Path, tally: Any) -> None:
        """Give cell ``p`` to ``worker`` (a worker that died meanwhile fails the cell when reaped)."""
        device = "cuda" if worker.gpu is not None and str(p.cfg.device).startswith("cuda:") else None
        task = cell_task(p, threads=self.threads, device=device)  # cuda:N → the one GPU the job sees
        task["outcome"] = str(tmp / f"{p.point.name}.outcome.json")
        offset = worker.log.stat().st_size
        with contextlib.suppress(BrokenPipeError, OSError):
            worker.proc.stdin.write((json.dumps(task) + "\n").encode())
            worker.proc.stdin.flush()
        worker.cell = _Cell(p, Path(task["outcome"]), time.perf_counter(), task["resume"], offset)
        tally.log(f"{tally.tag(p)}: started ({worker.where})")

    def collect(self, tally: Any) -> bool:
        """Record the cells that ended (an outcome written, or their process gone); True when any did."""
        any_ended = False
        for worker in list(self._workers.values()):
            cell = worker.cell
            if cell is None:
                continue
            outcome = _read_outcome(cell, worker)
            if outcome is None:
                continue
            worker.cell = None
            any_ended = True
            record_outcome(tally, cell.plan, outcome, resumed=cell.resumed, seconds=time.perf_counter() - cell.started)
        return any_ended

    def close(self) -> None:
        """End of input for every worker; wait for them (they are idle)."""
        workers = list(self._workers.values())
        self._workers.clear()
        for w in workers:
            with contextlib.suppress(OSError):
                w.proc.stdin.close()
        _wait_all([w.proc for w in workers], self.grace_s)

    def stop(self) -> None:
        """SIGINT each child once (a training one keeps its last checkpoint and frees its run folder), wait up
        to ``grace_s`` for them, then kill the rest."""
        workers = list(self._workers.values())
        self._workers.clear()
        for w in workers:
            with contextlib.suppress(ProcessLookupError):
                w.proc.send_signal(signal.SIGINT)
        _wait_all([w.proc for w in workers], self.grace_s)
        for w in workers:
            with contextlib.suppress(OSError):
                w.proc.stdin.close()


def _wait_all(procs: Sequence[subprocess.Popen], grace_s: float) -> None:
    """Wait up to ``grace_s`` in all for ``procs`` to end; kill those still running."""
    end = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read_outcome(cell: _Cell, worker: _Worker) -> dict[str, Any] | None:
    """The outcome of the worker's cell: the one it wrote, an error where its process ended without one (its
    exit code and the last line it printed for this cell), or ``None`` while it is still training."""
    from coreaug.io import read_json_dict

    if cell.outcome.is_file():
        return read_json_dict(cell.outcome) or {"error": "", "message": f"unreadable outcome {cell.outcome}"}
    code = worker.proc.poll()
    if code is None:
        return None
    with open(worker.log, "rb") as fh:
        fh.seek(cell.log_offset)
        lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    return {"error": "", "message": f"the job process ended ({why})" + (f": {lines[-1]}" if lines else "")}


def record_outcome(tally: Any, p: Any, outcome: Mapping[str, Any], *, resumed: bool, seconds: float) -> None:
    """Report one cell's outcome; a missing dataset stops the sweep (as :func:`coreaug.sweep.run_sweep` does)."""
    if "results" in outcome:
        tally.finish(p, outcome["results"], resumed=resumed, seconds=seconds)
        return
    if outcome.get("error") == "DatasetNotFoundError":
        raise DatasetNotFoundError(outcome.get("message", ""))
    tally.fail(p, str(outcome.get("error", "")), str(outcome.get("message", "")))


# ------------------------------------------------------------------------------------------ submitit
@dataclass
class SubmititLauncher(Launcher):
    """One submitit job per cell: on SLURM (``cluster="slurm"``) or as local processes (``"local"``).

    ``jobs``: the most cells in flight at once (``None``: all); ``threads`` as for :class:`LocalJobs`.
    The sweep waits for every job, then writes its report; Ctrl-C cancels the jobs in flight."""

    cluster: str
    folder: Path
    partition: str | None = None
    minutes: int = DEFAULT_SLURM_MINUTES
    gpus: int = 0
    jobs: int | None = None
    threads: int | None = None
    poll_s: float = 0.5
    _running: dict[Any, tuple[Any, float, bool]] = field(default_factory=dict, repr=False)
    _executor: Any = field(default=None, repr=False)

    def executor(self) -> Any:
        submitit = import_submitit()
        ex = submitit.AutoExecutor(folder=str(self.folder), cluster=self.cluster)
        params: dict[str, Any] = {"timeout_min": self.minutes, "gpus_per_node": self.gpus, "name": "coreaug-sweep"}
        if self.partition and self.cluster == "slurm":
            params["slurm_partition"] = self.partition
        ex.update_parameters(**params)
        return ex

    def has_room(self) -> bool:
        return self.jobs is None or len(self._running) < self.jobs

    def busy(self) -> bool:
        return bool(self._running)

    def start(self, p: Any, tally: Any) -> None:
        """Submit ``p`` as one job (the executor is made with the first)."""
        if self._executor is None:
            self._executor = self.executor()
        task = cell_task(p, threads=self.threads)
        # a local job's controller process prints to the stdout/stderr it inherits (e.g. on Ctrl-C)
        local = self.cluster == "local"
        with _output_to(self.folder / "local-controllers.log") if local else contextlib.nullcontext():
            job = self._executor.submit(CellJob(), task)
        self._running[job] = (p, time.perf_counter(), task["resume"])
        tally.log(f"{tally.tag(p)}: submitted (job {job.job_id})")

    def collect(self, tally: Any) -> bool:
        done = [job for job in self._running if job.done()]
        for job in done:
            p, t, resumed = self._running.pop(job)
            try:
                outcome = job.result()
            except Exception as exc:  # noqa: BLE001 - the job failed outside run_cell (killed, timed out …)
                outcome = {"error": type(exc).__name__, "message": first_line(exc)}
            record_outcome(tally, p, outcome, resumed=resumed, seconds=time.perf_counter() - t)
        return bool(done)

    def stop(self) -> None:
        """Cancel the jobs in flight (SIGINT to local ones: they keep their checkpoints)."""
        running = list(self._running)
        self._running.clear()
        for job in running:
            with contextlib.suppress(Exception):
                job.cancel(check=False)
        # local jobs: wait (a while, in all) for them to free their run folders
        _wait_all([proc for job in running if (proc := getattr(job, "_process", None)) is not None], STOP_GRACE_S)


@contextlib.contextmanager
def _output_to(path: Path):
    """File descriptors 1 and 2 of this process point to ``path`` meanwhile (for the processes it starts), and
    SIGINT is not ignored (so that a job's controller stops on the SIGINT of its cancel even where the sweep
    runs in the background, SIGINT ignored)."""
    with _sigint_not_ignored(), _redirected(path):
        yield


@contextlib.contextmanager
def _sigint_not_ignored():
    """SIGINT's default action meanwhile where it is ignored (for the processes this one starts)."""
    try:
        previous = signal.getsignal(signal.SIGINT)
        if previous is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
    except ValueError:  # not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is signal.SIG_IGN:
            signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _redirected(path: Path):
    """File descriptors 1 and 2 point to ``path`` meanwhile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)


def make_launcher(name: str, *, jobs: int | None, out: Path, threads_fixed: bool, slurm_partition: str | None = None,
                  slurm_time: Any = None, slurm_gpus: Any = None) -> Any:
    """The launcher for ``coreaug sweep`` (``None``: this process, one cell after another), checked now so
    that bad input fails in one line before anything is written.

    ``threads_fixed``: the grid sets ``threads`` itself; otherwise cells running side by side here share the
    cores (``max(1, cores // jobs)`` each)."""
    from coreaug.device import default_threads  # the cores, shared evenly between the jobs

    jobs = check_jobs(jobs)
    name = check_launcher(name)
    minutes = DEFAULT_SLURM_MINUTES if slurm_time is None else parse_slurm_time(slurm_time)
    gpus = check_slurm_gpus(slurm_gpus)
    if name == "local":
        if jobs is None or jobs == 1:
            return None
        return LocalJobs(jobs, threads=None if threads_fixed else default_threads(jobs))
    cluster = "slurm" if name == "submitit" else "local"
    threads = None
    if cluster == "local":  # jobs on this machine: at most one a core by default, sharing the cores
        from coreaug.device import available_cpus

        jobs = jobs or available_cpus()
        threads = None if threads_fixed else default_threads(jobs)
    return SubmititLauncher(cluster, out.resolve() / ".submitit", partition=slurm_partition, minutes=minutes,
                            gpus=gpus, jobs=jobs, threads=threads)


__all__ = ["LAUNCHERS", "Launcher", "InProcess", "LocalJobs", "SubmititLauncher", "CellJob", "run_cell", "cell_task", "make_launcher",
           "check_launcher", "check_jobs", "parse_slurm_time", "visible_gpus"]


if __name__ == "__main__":  # pragma: no cover - the child of LocalJobs
    main()
