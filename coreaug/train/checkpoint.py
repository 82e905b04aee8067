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

from coreaug.errors import CheckpointError
from coreaug.io import load_checkpoint, read_json_dict, save_checkpoint

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """Capture the torch, CUDA, numpy and Python RNG states."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states captured by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
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


def finished_results(run_dir: str | Path) -> dict[str, Any] | None:
    """``run_dir/results.json`` of a completed run, or ``None`` when it is missing, unreadable or not completed."""
    results = read_json_dict(Path(run_dir) / "results.json")
    return results if results is not None and results.get("completed") else None


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
    return state
