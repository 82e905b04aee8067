"""Named pause points for fault-injection tests (``tests/test_chaos.py``).

Code that writes a run folder calls :func:`pause_point` at a few named places (``run:locked``,
``train:step``, ``epoch:end``, ``write:<file name>``). Normally this is one dictionary lookup and
does nothing. When the environment sets ::

    COREAUG_PAUSE_AT=train:step#3        # the 3rd time the point is reached (default: the 1st)
    COREAUG_PAUSE_FILE=/tmp/sentinel     # written with this process's PID when it pauses

the process writes its PID to ``COREAUG_PAUSE_FILE`` at that moment and sleeps there, so a test can
``SIGKILL`` it at an exact point of its work instead of guessing with timers. A paused process that
is never killed gives up after ``COREAUG_PAUSE_TIMEOUT`` seconds (default 120) with a RuntimeError.
"""

from __future__ import annotations

import os
import time

_ENV_AT, _ENV_FILE, _ENV_TIMEOUT = "COREAUG_PAUSE_AT", "COREAUG_PAUSE_FILE", "COREAUG_PAUSE_TIMEOUT"
_seen: dict[str, int] = {}  # per-process visit counts of the armed point (only used when armed)


def pause_armed(name: str) -> bool:
    """Whether ``COREAUG_PAUSE_AT`` names point ``name`` (check once, outside a hot loop)."""
    return os.environ.get(_ENV_AT, "").partition("#")[0] == name


def pause_point(name: str) -> None:
    """Pause here (write the PID, then sleep until killed) if ``COREAUG_PAUSE_AT`` names this point."""
    spec = os.environ.get(_ENV_AT)
    if not spec:
        return
    point, _, nth = spec.partition("#")
    if point != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] != (int(nth) if nth else 1):
        return
    sentinel = os.environ.get(_ENV_FILE)
    if sentinel:
        tmp = f"{sentinel}.{os.getpid()}.part"
        with open(tmp, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        os.replace(tmp, sentinel)  # the test sees the whole PID or nothing
    deadline = time.monotonic() + float(os.environ.get(_ENV_TIMEOUT, "120"))
    while time.monotonic() < deadline:
        time.sleep(0.05)
    raise RuntimeError(f"pause point {name!r} was never released (no SIGKILL within the timeout)")
