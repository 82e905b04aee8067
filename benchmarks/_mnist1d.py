"""The MNIST-1D example of ``notebooks/04_your_own_loop.ipynb`` as a module (``from _mnist1d import load_example``).

The notebook is the one copy of the example: the user's data (``load_mnist1d``), model (``CNN1d``),
strong augmentation (``Strong1d``), settings (``SETTINGS``, ``PUBLISHED``) and plain training loop
(``train_run``) live in its code cells tagged ``example``. :func:`load_example` executes exactly those
cells, in order, into a fresh module, so ``benchmarks/bench_mnist1d.py`` trains what the notebook
shows and the two cannot drift apart. The notebook's other cells (settings, runs, plots) are not run.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "04_your_own_loop.ipynb"
TAG = "example"
MODULE_NAME = "mnist1d_example"


def example_source(path: str | Path = NOTEBOOK) -> str:
    """The code cells of ``path`` tagged ``example``, joined in notebook order."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    parts = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and TAG in cell.get("metadata", {}).get("tags", []):
            src = cell["source"]
            parts.append("".join(src) if isinstance(src, list) else src)
    if not parts:
        raise RuntimeError(f"{path}: no code cell tagged {TAG!r}")
    return "\n\n\n".join(parts) + "\n"


def load_example(path: str | Path = NOTEBOOK) -> types.ModuleType:
    """A module holding the notebook's example code (registered in ``sys.modules`` so its classes pickle)."""
    mod = types.ModuleType(MODULE_NAME, f"example cells of {Path(path).name}")
    mod.__file__ = str(path)
    sys.modules[MODULE_NAME] = mod
    exec(compile(example_source(path), f"{Path(path).name}[{TAG} cells]", "exec"), mod.__dict__)
    for name in ("load_mnist1d", "CNN1d", "Strong1d", "SETTINGS", "PUBLISHED", "train_run"):
        if not hasattr(mod, name):
            raise RuntimeError(f"{path}: the {TAG!r} cells define no {name!r}")
    return mod
