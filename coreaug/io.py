"""Atomic writes for results and checkpoints: write to a temp file in the same folder, then rename.

Also the project's strict JSON (non-finite floats become ``null``; bare ``NaN``/``Infinity`` are never
written), output-folder checks that fail with one line (:class:`~coreaug.errors.OutputError`) before
any work is done, and a short description of a state-dict mismatch.

Temporary files are named ``.<name>.<random>.tmp`` (:data:`TEMP_FILE_PATTERN`); a killed write can
leave one behind, and :mod:`coreaug.runlock` removes those of a run folder when it takes the lock.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import pickle
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import torch

from coreaug.errors import CheckpointError, OutputError, first_line
from coreaug.hooks import pause_point

#: Names of the temporary files :func:`atomic_path` creates (``tempfile.mkstemp`` adds 8 characters).
TEMP_FILE_PATTERN = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def os_reason(exc: OSError) -> str:
    """A short lower-case reason for an ``OSError`` ("permission denied", "no space left on device", …)."""
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


def _blocking_file(folder: Path) -> Path | None:
    """The first component of ``folder`` (from the root down) that exists but is not a folder."""
    for p in reversed([folder, *folder.parents]):
        if not p.exists():
            return None
        if not p.is_dir():
            return p
    return None


def _blocked(folder: Path, blocker: Path, what: str) -> OutputError:
    return OutputError(f"cannot create {what} {folder}: {blocker} is a file, not a folder")


def check_output_dir(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Check, without creating anything, that ``folder`` can be created or written.

    Raises :class:`OutputError` when a file is in the way (``folder`` itself or one of its parents)
    or the nearest existing folder is not writable. Use it before long work whose result goes there.
    """
    folder = Path(folder)
    blocker = _blocking_file(folder)
    if blocker == folder:
        raise OutputError(f"{what} {folder} is a file, not a folder; choose another path")
    if blocker is not None:
        raise _blocked(folder, blocker, what)
    existing = next(p for p in [folder, *folder.parents] if p.exists()) if not folder.exists() else folder
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {folder} cannot be written: permission denied on {existing}")
    return folder


def make_dirs(folder: str | os.PathLike, what: str = "output folder") -> list[Path]:
    """``mkdir -p folder``, raising a one-line :class:`OutputError`; returns the folders it created (outermost first)."""
    folder = Path(folder)
    missing = [p for p in reversed([folder, *folder.parents]) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = _blocking_file(folder)
        if blocker is not None:
            raise _blocked(folder, blocker, what) from None
        raise OutputError(f"cannot create {what} {folder}: {os_reason(exc)}") from None
    return missing


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    If the body raises, the temporary file is removed and ``path`` is left untouched. Any
    ``OSError`` (no permission, disk full, …) becomes a one-line :class:`OutputError` that says
    the previous file, if any, is unchanged.
    """
    path = Path(path)
    make_dirs(path.parent)
    tmp_path: Path | None = None
    try:
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            tmp_path = Path(tmp)
            yield tmp_path
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
            pause_point(f"write:{path.name}")  # fault-injection tests: killed with the temp file written
            if os.path.abspath(path) in _EXCLUSIVE:
                _link_new(tmp_path, path)
            else:
                os.replace(tmp_path, path)
        except OSError as exc:
            kept = f"; the previous {path.name} is unchanged" if path.is_file() else ""
            raise OutputError(f"cannot write {path}: {os_reason(exc)}{kept}") from None
    finally:
        if tmp_path is not None:
            with contextlib.suppress(OSError):
                tmp_path.unlink(missing_ok=True)


#: Absolute paths that atomic writes may create but never replace (see :func:`exclusive_create`).
_EXCLUSIVE: set[str] = set()


@contextlib.contextmanager
def exclusive_create(path: str | os.PathLike, enabled: bool = True) -> Iterator[None]:
    """Within the body, an atomic write to ``path`` creates it but never replaces a file that exists by then.

    For outputs that are never overwritten without ``--force``: the check before the work can pass for two
    processes at once, and the slower one would silently replace the other's file. Here the finished temp
    file is hard-linked to ``path`` (atomic, fails when ``path`` exists), so the second writer gets a one-line
    :class:`OutputError` and the first file stays. ``enabled=False`` (``--force``) changes nothing.
    """
    key = os.path.abspath(path)
    if not enabled or key in _EXCLUSIVE:
        yield
        return
    _EXCLUSIVE.add(key)
    try:
        yield
    finally:
        _EXCLUSIVE.discard(key)


def _link_new(tmp_path: Path, path: Path) -> None:
    """Give ``tmp_path``'s file the new name ``path`` atomically, refusing when ``path`` exists."""
    try:
        os.link(tmp_path, path)
    except FileExistsError:
        raise OutputError(f"{path} already exists (another process wrote it meanwhile); pass --force to "
                          "overwrite it or choose another file") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # no hard links on this file system: claim the name exclusively, then move the file onto it
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            raise OutputError(f"{path} already exists (another process wrote it meanwhile); pass --force to "
                              "overwrite it or choose another file") from None
        os.replace(tmp_path, path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def csv_text(rows: Iterable[Mapping[str, Any]], fieldnames: Sequence[str]) -> str:
    """CSV text (header + one line per row, ``\n`` line ends) of ``rows`` projected onto ``fieldnames``;
    a missing key or ``None`` is an empty cell."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fieldnames), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k) for k in fieldnames})
    return buf.getvalue()


def strict_json_value(obj: Any) -> Any:
    """``obj`` with tensors/arrays as lists, paths as strings and every NaN/±inf float replaced by ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json_value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json_value(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor) or (hasattr(obj, "tolist") and not isinstance(obj, (str, bytes))):
        return strict_json_value(obj.tolist())  # tensors, numpy arrays and numpy scalars
    return obj


def dumps_json(obj: Any, *, indent: int | None = None) -> str:
    """Strict JSON text of ``obj``: non-finite floats are written as ``null`` (never bare ``NaN``/``Infinity``)."""
    return json.dumps(strict_json_value(obj), indent=indent, allow_nan=False, default=_json_default)


def read_json_dict(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` when the file is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> None:
    """Serialise ``obj`` as strict JSON (:func:`dumps_json`: NaN/±inf → ``null``) and write it atomically."""
    write_text_atomic(path, dumps_json(obj, indent=indent) + "\n")


def write_figure_atomic(fig: Any, path: str | os.PathLike, **savefig_kw: Any) -> Path:
    """Render a matplotlib figure in the format named by ``path``'s suffix and write it atomically."""
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".").lower(), **savefig_kw)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def _short_list(names: list[str], k: int = 3) -> str:
    return ", ".join(names[:k]) + (f", … +{len(names) - k} more" if len(names) > k else "")


def state_dict_mismatch(expected: Mapping[str, Any], got: Mapping[str, Any]) -> str | None:
    """A one-line description of how ``got`` fails to fit ``expected`` (missing, unexpected and
    mis-shaped keys, each list shortened), or ``None`` when every key and shape matches."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [f"{k} {tuple(got[k].shape)} vs {tuple(expected[k].shape)}" for k in expected
              if k in got and hasattr(got[k], "shape") and tuple(got[k].shape) != tuple(expected[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s) ({_short_list(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s) ({_short_list(unexpected)})")
    if shapes:
        parts.append(f"{len(shapes)} key(s) of another shape ({_short_list(shapes, 2)})")
    return "; ".join(parts) or None


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save`` ``state`` to ``path`` atomically (a crash never leaves a half-written file)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def _legacy_safe_globals() -> list[Any]:
    """The numpy types of the numpy RNG state (a ``uint32`` array) in checkpoints written before it was stored
    as a tensor: allow-listed so those checkpoints still load under ``weights_only=True``."""
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def _refused_global(message: str) -> str:
    """The class or function a ``weights_only`` load refused, as named in torch's message."""
    found = re.search(r"GLOBAL (\S+)|but got <class '([^']+)'>", message)
    return next((g for g in found.groups() if g), "?") if found else "?"


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu",
                    what: str = "checkpoint") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, raising :class:`CheckpointError` if unreadable.

    The file is unpickled with ``weights_only=True``: tensors, containers and plain values only (plus the
    numpy RNG-state array of older checkpoints), so a crafted file cannot run code; one that needs anything
    else is refused with one line. Messages name the file as ``what`` (e.g. ``"weights file"``).
    """
    path = Path(path)
    if not path.is_file():
        why = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise CheckpointError(f"{what} {path} {why}")
    try:
        with torch.serialization.safe_globals(_legacy_safe_globals()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # a garbage file: refused below
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if not re.search(r"GLOBAL |Can only build|allowlisted", str(exc)):
            raise CheckpointError(f"{what} {path} is corrupted or unreadable (UnpicklingError); "
                                  "delete it or pass another") from None
        raise CheckpointError(
            f"{what} {path} holds objects other than tensors and plain values ({_refused_global(str(exc))}); "
            "refused to load it, since unpickling them could run code: pass a coreaug checkpoint or a state dict"
        ) from None
    except Exception as exc:  # torch raises many types for truncated/corrupted files
        raise CheckpointError(
            f"{what} {path} is corrupted or unreadable ({type(exc).__name__}); delete it or pass another"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{what} {path} does not hold a state dictionary")
    return state


#: Entries of a checkpoint dict that wrap the model's state dict (Lightning-style, then ``coreaug train``'s).
STATE_DICT_ENTRIES: tuple[str, ...] = ("state_dict", "model")


def _not_tensors(state: dict[Any, Any]) -> str | None:
    """What keeps ``state`` from being a state dict (its first name that is not a string, or entry that is
    not a tensor), as a short phrase; ``None`` when every entry is a tensor under a string name."""
    for name, value in state.items():
        if not isinstance(name, str):
            return f"name {name!r} is not a string ({type(name).__name__})"
        if not isinstance(value, torch.Tensor):
            return f"entry {name!r} holds {type(value).__name__}, not a tensor"
    return None


def read_state_dict(path: str | os.PathLike, *, what: str = "weights file") -> dict[str, torch.Tensor]:
    """The state dict (names → tensors) in the file ``path``: the file's dict itself, or the one it wraps
    under ``"state_dict"`` and/or ``"model"`` (a Lightning or ``coreaug train`` checkpoint); the
    DistributedDataParallel ``module.`` prefix is stripped from the names.

    The one reader of state-dict files (``--weights``, ``--checkpoint``). It loads with
    :func:`load_checkpoint` (``weights_only=True``: a crafted file cannot run code). A missing path, a
    folder, a damaged or refused file, or anything but a mapping of tensors raises a one-line
    :class:`CheckpointError` whose message names the file as ``what`` (``"weights file"``, ``"checkpoint"``).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{what} {path} does not exist (no downloads are attempted)")
    state = load_checkpoint(path, what=what)
    for key in STATE_DICT_ENTRIES:
        if isinstance(state.get(key), dict):
            state = state[key]
    why = _not_tensors(state)
    if why is not None:
        raise CheckpointError(f"{what} {path} does not hold a state dict of tensors ({why})")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def fit_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike, *,
                   what: str = "weights file", label: str | None = None) -> torch.nn.Module:
    """Load ``state`` (read from ``path``) into ``model``, every key fitting; otherwise a one-line
    :class:`CheckpointError` naming the file (``what``), the model (``label``, default its class) and the
    missing, unexpected or other-shaped keys."""
    label = label or type(model).__name__
    mismatch = state_dict_mismatch(model.state_dict(), state)
    if mismatch is not None:
        raise CheckpointError(f"{what} {path} does not fit {label}: {mismatch}")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # e.g. a dtype that cannot be copied
        raise CheckpointError(f"{what} {path} does not fit {label}: {first_line(exc)}") from None
    return model


def finite_scalar(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (a bool counts as 0/1), else ``None``: what a
    metrics logger (TensorBoard, Lightning's loggers) can plot."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(float(value)):
        return float(value)
    return None
