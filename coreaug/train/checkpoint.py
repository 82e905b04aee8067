"""Checkpoints: everything needed to resume a run bit-for-bit on CPU with a fixed seed.

A checkpoint holds the model, optimizer, scheduler and AMP-scaler states, the RNG states (torch,
CUDA, numpy, Python), the current subset and its weights (and the random main subset of regime
(c)), the next epoch to run, the metrics so far and the config hash. It is written atomically
(:func:`coreaug.io.save_checkpoint`) at the end of every epoch.

It also records the number of torch CPU threads. Resuming is bit-for-bit on CPU only with the same
thread count (reductions split differently across threads round differently, and the difference
grows over later epochs); a resume with another count runs but warns (:func:`warn_if_threads_differ`).
Which other settings may change on resume: the fields outside the config hash (``device``,
``num_workers``, ``threads``, ``eval_batch_size``, ``data_root``, ``allow_nonfinite``, ``notes``).
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coreaug.errors import CheckpointError, first_line
from coreaug.io import load_checkpoint, save_checkpoint
from coreaug.runfolder import CHECKPOINT as CHECKPOINT_NAME  # the layout lives in RunFolder

FORMAT_VERSION = 1
#: What a resumable checkpoint must hold, and the type of each entry (``None`` allowed for ``subset``).
REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "epoch": int, "model": dict, "optimizer": dict, "scheduler": dict, "scaler": dict, "rng": dict,
    "metrics": list, "subset": (dict, type(None)),
}


def rng_state() -> dict[str, Any]:
    """Capture the torch, CUDA, numpy and Python RNG states (tensors and plain values only, so that the
    checkpoint loads with ``torch.load(weights_only=True)``: numpy's key array is stored as a tensor)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states captured by :func:`rng_state` (also the numpy-array form of older checkpoints).

    Raises:
        CheckpointError: a state is missing or malformed.
    """
    try:
        name, keys, pos, has_gauss, cached = state["numpy"]
        torch.set_rng_state(state["torch"])
        np.random.set_state((name, np.asarray(keys, dtype=np.int64).astype(np.uint32), pos, has_gauss, cached))
        random.setstate(tuple(state["python"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"the RNG state in the checkpoint is missing or malformed ({type(exc).__name__}: "
                              f"{first_line(exc)})") from None
    if "cuda" in state and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(state["cuda"])
        except (RuntimeError, IndexError):  # different number of GPUs: keep the fresh states
            pass


def write_checkpoint(run_dir: str | Path, state: dict[str, Any]) -> Path:
    """Atomically write ``state`` (plus the format version) to ``run_dir/checkpoint.pt``."""
    path = Path(run_dir) / CHECKPOINT_NAME
    save_checkpoint(path, {"format_version": FORMAT_VERSION, "threads": torch.get_num_threads(), **state})
    return path


def warn_if_threads_differ(state: dict[str, Any], device: torch.device | str = "cpu") -> bool:
    """Warn (and return True) when a CPU run resumes with another torch thread count than it was saved with."""
    saved = state.get("threads")
    now = torch.get_num_threads()
    if saved is None or saved == now or torch.device(device).type != "cpu":
        return False
    warnings.warn(f"resuming with {now} torch threads, but the checkpoint was written with {saved}: the run "
                  f"continues, not bit-for-bit (pass --threads {saved} for identical results)", stacklevel=3)
    return True


def warn_if_workers_differ(state: dict[str, Any], workers: int) -> bool:
    """Warn (and return True) when a run resumes in the other loader mode than it was saved with:
    in-process loading (0 workers) draws each epoch's augmentations from one seeded stream, loader
    workers seed every item on its own, so the two give different (equally valid) augmentations; any
    two worker counts above 0 give the same."""
    saved = state.get("num_workers")
    if saved is None or (int(saved) > 0) == (int(workers) > 0):
        return False
    warnings.warn(f"resuming with {workers} loader workers, but the checkpoint was written with {saved}: the run "
                  f"continues, not bit-for-bit (pass --num-workers {saved} for identical results)", stacklevel=3)
    return True


def read_checkpoint(run_dir: str | Path, *, config_hash: str) -> dict[str, Any]:
    """Load ``run_dir/checkpoint.pt`` and check it was written by the same configuration."""
    path = Path(run_dir) / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"cannot resume: no {CHECKPOINT_NAME} in {run_dir}")
    state = load_checkpoint(path)
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format {state.get('format_version')!r}, expected {FORMAT_VERSION}")
    if state.get("config_hash") != config_hash:
        raise CheckpointError(
            f"checkpoint {path} was written by another configuration (hash {state.get('config_hash')} != "
            f"{config_hash}); use the same settings or a new --out folder"
        )
    check_checkpoint_keys(state, path)
    return state


def check_checkpoint_keys(state: dict[str, Any], path: str | Path) -> None:
    """Raise a one-line :class:`CheckpointError` when ``state`` lacks an entry needed to resume or has one of
    the wrong type (a damaged or hand-edited checkpoint), instead of failing later with a traceback."""
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(map(repr, missing))}; it cannot be resumed "
                              "(delete it to restart the run from epoch 0)")
    for key, kind in REQUIRED_KEYS.items():
        if isinstance(state[key], bool) or not isinstance(state[key], kind):
            raise CheckpointError(f"checkpoint {path} has a malformed {key!r} ({type(state[key]).__name__}); it cannot "
                                  "be resumed (delete it to restart the run from epoch 0)")
    rng = state["rng"]
    if not all(k in rng for k in ("torch", "numpy", "python")):
        raise CheckpointError(f"checkpoint {path} lacks part of its RNG state; it cannot be resumed "
                              "(delete it to restart the run from epoch 0)")
