"""Every notebook in notebooks/ executes top to bottom without an error (nbclient, python3 kernel)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))

#: Small sizes for notebooks whose defaults take minutes: a cell inserted right after the notebook's
#: cell tagged ``parameters`` (papermill's convention), so the test runs every other cell unchanged.
PARAMETERS = {
    "04_your_own_loop": "EPOCHS, N_TRAIN = 3, 1000",
}


def with_parameters(nb, source: str, name: str):
    """``nb`` with a code cell ``source`` after its ``parameters`` cell (which must exist)."""
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{name}: expected one cell tagged 'parameters', found {len(tagged)}"
    nb.cells.insert(tagged[0] + 1, nbformat.v4.new_code_cell(source))
    return nb


def test_there_are_at_least_three_notebooks():
    assert len(NOTEBOOKS) >= 3, [p.name for p in NOTEBOOKS]


def test_parameters_name_existing_notebooks():
    assert set(PARAMETERS) <= {p.stem for p in NOTEBOOKS}, sorted(set(PARAMETERS) - {p.stem for p in NOTEBOOKS})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, tmp_path: Path):
    nb = nbformat.read(path, as_version=4)
    if path.stem in PARAMETERS:
        nb = with_parameters(nb, PARAMETERS[path.stem], path.stem)
    env_backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "Agg"
    try:
        # Run inside a scratch folder so notebooks that write files leave the checkout clean.
        client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
        client.execute()  # raises CellExecutionError naming the failing cell
    finally:
        if env_backend is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = env_backend
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
