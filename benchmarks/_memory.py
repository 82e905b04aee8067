"""Peak-memory measurement shared by the benchmarks (run as ``python benchmarks/bench_x.py``, so
``from _memory import PeakMemory`` resolves to this file).

* :class:`PeakMemory` — CUDA: ``max_memory_allocated`` above the level before the block; CPU: peak
  RSS above the level before the block (after gc + malloc_trim), sampled every 2 ms by a thread.
  The sampler competes for the GIL, so use it in a separate, untimed run.
* :class:`RssHighWater` — CPU only: peak RSS above the level before the block from the kernel's
  high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``). No thread, nothing runs
  during the block, so it may wrap a timed run; ``peak`` is ``None`` where the kernel does not
  support the reset (non-Linux, or ``clear_refs`` not writable).
"""

from __future__ import annotations

import gc
import os
import threading
import time

import torch


def _malloc_trim() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except Exception:  # not glibc
        pass


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # non-Linux: fall back to the (monotone) max RSS
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak memory above the starting level during a ``with`` block (CUDA allocator or CPU RSS)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0

    def __enter__(self):
        gc.collect()
        _malloc_trim()  # hand freed heap back to the OS so the RSS delta reflects this call
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return self
        self.base = _rss_bytes()
        self._stop = threading.Event()
        self._max = self.base

        def sample():
            while not self._stop.is_set():
                self._max = max(self._max, _rss_bytes())
                time.sleep(0.002)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self._stop.set()
            self._thread.join()
            self._max = max(self._max, _rss_bytes())
            self.peak = self._max - self.base
        return False


def _status_kib(field: str) -> int | None:
    """``field`` (e.g. ``VmHWM``) from ``/proc/self/status`` in KiB, or None."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class RssHighWater:
    """Peak RSS above the starting level during a ``with`` block, from the kernel's high-water mark.

    ``peak`` is in bytes, or ``None`` where the high-water mark cannot be reset.
    """

    def __init__(self):
        self.peak: int | None = None
        self.base: int | None = None

    def __enter__(self):
        gc.collect()
        _malloc_trim()  # as PeakMemory: the delta reflects this block, not freed heap from earlier
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
        except OSError:
            return self
        self.base = _status_kib("VmRSS")
        return self

    def __exit__(self, *exc):
        hwm = _status_kib("VmHWM")
        if self.base is not None and hwm is not None:
            self.peak = max(0, hwm - self.base) * 1024
        return False
