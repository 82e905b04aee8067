"""An exclusive lock on a run folder, taken before anything in it is read or written, held for the whole run.

The lock is ``fcntl.flock`` on ``RUN_DIR/.coreaug.lock``. The kernel drops it when the holding
process ends for any reason (SIGKILL and power loss included), so a killed run never leaves a
stale lock: the next run or ``--resume`` simply takes it. The holder writes its PID into the file so
that a refused process can name it::

    coreaug: error: run folder runs/x is in use by another run (PID 4242); wait for it to end or choose another --out

Taking the lock also

* creates the folder when it does not exist (and remembers that it did),
* removes stale temporary files of killed atomic writes (``.<name>.<random>.tmp``, see
  :data:`coreaug.io.TEMP_FILE_PATTERN`) — no other writer of the folder can be alive.

Releasing it removes the lock file, and the folders it created when they are still empty, so a run
that stopped on bad input leaves nothing behind. Within one process the lock is re-entrant: the CLI
takes it before reading ``config.json`` for ``--resume`` and :func:`coreaug.train.train` takes it
again. Under DDP only rank 0 takes it (see ``coreaug/train/loop.py``). Where ``fcntl`` does not exist
(Windows) the lock is a no-op.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from coreaug.errors import OutputError, RunFolderBusyError
from coreaug.io import TEMP_FILE_PATTERN, make_dirs, os_reason

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from coreaug.runfolder import LOCK_NAME  # noqa: E402 (the run-folder layout is named there)



class RunLock:
    """The lock of one run folder, held by this process; use :func:`acquire_run_lock` to get one.

    Subclasses change :attr:`lock_name` and the wording of the "busy" error (:class:`SweepLock`).

    Attributes:
        folder: the run folder.
        created: folders this lock created (outermost first); removed on release if still empty.
        removed_temp: names of the stale temporary files removed when the lock was taken.
    """

    lock_name = LOCK_NAME
    what = "run folder"  # how errors name the folder
    holder = "run"  # how errors name the other process
    #: realpath -> the lock of this class this process holds (re-entrancy); one registry per class
    _registry: dict[str, "RunLock"] = {}

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / self.lock_name
        self.created: list[Path] = []
        self.removed_temp: list[str] = []
        self._fd: int | None = None
        self._depth = 0
        self._key = ""

    @property
    def created_folder(self) -> bool:
        """True when the run folder did not exist before this lock was taken."""
        return bool(self.created) and self.created[-1] == self.folder

    def release(self) -> None:
        """Release one hold; the last one unlocks, removes the lock file and the empty folders it created."""
        self._depth -= 1
        if self._depth > 0:
            return
        self._registry.pop(self._key, None)
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # still holding the lock: a waiter that opened it re-checks the inode
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing drops the flock
            self._fd = None
        self._remove_created()

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    # ------------------------------------------------------------------ internals
    def _acquire(self) -> None:
        self.created = make_dirs(self.folder, self.what)
        if fcntl is None:  # pragma: no cover
            return
        for _ in range(50):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                self._remove_created()
                raise OutputError(f"cannot write {self.what} {self.folder}: {os_reason(exc)}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # BlockingIOError: somebody else holds it
                pid = _read_pid(fd)
                os.close(fd)
                self._remove_created()
                raise RunFolderBusyError(self._busy_message(pid)) from None
            try:  # the holder may have unlinked the file between our open and flock: then retry
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        else:  # pragma: no cover - 50 lost races in a row
            raise RunFolderBusyError(
                f"{self.what} {self.folder} is in use by other {self.holder}s starting and stopping")
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self.removed_temp = self._remove_stale()
        except OSError as exc:  # e.g. a full disk: give the lock back, leaving no lock file or new folder behind
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # while still holding it, as release() does
            os.close(fd)
            self._remove_created()
            raise OutputError(f"cannot write {self.what} {self.folder}: {os_reason(exc)}") from None
        self._fd = fd

    def _remove_stale(self) -> list[str]:
        """Called once locked: remove what killed writers left (the temp files of atomic writes)."""
        return remove_stale_temp_files(self.folder)

    def _busy_message(self, pid: str) -> str:
        return (f"run folder {self.folder} is in use by another run (PID {pid}); "
                "wait for it to end or choose another --out")

    def _remove_created(self) -> None:
        """Remove the folders this lock created, innermost first, where they are empty."""
        for folder in reversed(self.created):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds when empty


def _read_pid(fd: int) -> str:
    """The PID the holder wrote (it writes right after locking: wait up to ~1 s for it)."""
    for _ in range(50):
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return text
        time.sleep(0.02)
    return "unknown"


def remove_stale_temp_files(folder: str | os.PathLike) -> list[str]:
    """Delete the temporary files of interrupted atomic writes directly in ``folder``; return their names."""
    removed = []
    for p in sorted(Path(folder).iterdir()):
        if TEMP_FILE_PATTERN.fullmatch(p.name) and p.is_file():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p.name)
    return removed


def acquire_run_lock(folder: str | os.PathLike) -> RunLock:
    """Take the exclusive lock of run folder ``folder`` (creating it if needed); re-entrant per process.

    Raises:
        RunFolderBusyError: another live process holds it (the message names the folder and its PID).
        OutputError: the folder cannot be created or written (a file in the way, no permission, …).
    """
    return _acquire_reentrant(RunLock, folder)


def _acquire_reentrant(cls: type[RunLock], folder: str | os.PathLike):
    """One hold more on ``cls``'s lock of ``folder``: taken from the OS on the first hold of this
    process, counted after that (in ``cls._registry``, by the folder's real path)."""
    key = os.path.realpath(folder)
    lock = cls._registry.get(key)
    if lock is None:
        lock = cls(Path(folder))
        lock._acquire()
        lock._key = key
        cls._registry[key] = lock
    lock._depth += 1
    return lock


SWEEP_LOCK_NAME = ".coreaug-sweep.lock"

class SweepLock(RunLock):
    """The lock of a sweep folder (``OUT/.coreaug-sweep.lock``): one ``coreaug sweep`` writes into ``OUT`` at a time.

    Held for the whole sweep (runs and ``OUT/report``), next to the per-run locks of the cells; like those,
    the kernel drops it when the sweep dies. Use :func:`acquire_sweep_lock`."""

    lock_name = SWEEP_LOCK_NAME
    what = "sweep folder"
    holder = "sweep"
    _registry: dict[str, "RunLock"] = {}  # apart from the run locks' (a sweep may also be a run's folder)

    def _remove_stale(self) -> list[str]:
        return []  # OUT's own files are a report's; a live `coreaug report --out OUT` may be writing them

    def _busy_message(self, pid: str) -> str:
        return (f"sweep folder {self.folder} is in use by another sweep (PID {pid}): nothing was run; "
                "wait for it to end, then rerun to finish the grid, or choose another --out")


def acquire_sweep_lock(folder: str | os.PathLike) -> SweepLock:
    """Take the exclusive lock of sweep folder ``folder`` (creating it if needed); re-entrant per process.

    Raises:
        RunFolderBusyError: another live sweep holds it (the message names the folder and its PID).
        OutputError: the folder cannot be created or written.
    """
    return _acquire_reentrant(SweepLock, folder)


def is_run_file(name: str) -> bool:
    """False for the bookkeeping files a run folder may hold besides the run's own (the lock file)."""
    return name != LOCK_NAME


__all__ = ["LOCK_NAME", "SWEEP_LOCK_NAME", "RunLock", "SweepLock", "acquire_run_lock", "acquire_sweep_lock",
           "remove_stale_temp_files", "is_run_file"]
