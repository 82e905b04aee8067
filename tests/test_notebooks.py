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


def test_mnist1d_example_cells_are_the_benchmarks_code():
    """benchmarks/bench_mnist1d.py runs the cells of 04_your_own_loop tagged 'example' (benchmarks/_mnist1d.py):
    they must still define the data, model, transform, settings and loop, and work on a tiny input."""
    import importlib.util

    import torch

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("_mnist1d_helper", root / "benchmarks" / "_mnist1d.py")
    helper = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helper)
    ex = helper.load_example()
    assert {"full", "full-aug", "coreset 10%", "random 10%", "coreset 30%", "random 30%"} <= set(ex.SETTINGS)
    assert ex.SETTINGS["random 10%"] == {**ex.SETTINGS["coreset 10%"], "selector": "random"}
    x = torch.randn(3, 1, 40)
    assert ex.CNN1d()(x).shape == (3, 10)
    torch.manual_seed(0)
    y = ex.Strong1d()(x[0])
    assert y.shape == x[0].shape and not torch.equal(y, x[0])
    # no noise, no scale, no shift: the identity (the interpolation reads every sample where it was)
    assert torch.allclose(ex.Strong1d(max_shift=0.0, max_scale=1.0, noise=0.0)(x[0]), x[0], atol=1e-6)
