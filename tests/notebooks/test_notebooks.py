"""Every notebook in notebooks/ runs headless, top to bottom.

A notebook's first code cell holds its parameters (tagged ``parameters``, papermill's convention). Its
defaults are what a reader runs (each cell under a minute on an idle 2-core machine); the test runs the
same cells on a smaller setting, given in :data:`SMALL` and injected as a cell after the parameters, as
papermill does. The limits below only catch a hang (a cell: nbclient's error names it; a notebook:
pytest-timeout's, above the suite's per-test one).
"""

import ast
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import THREADS_ENV

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 900
# the test's setting per notebook: every cell still runs, on fewer items, SNRs, rounds and epochs
SMALL = {
    "deployment.ipynb": {"SENTENCES": 40, "IMAGES": 16, "N_TRAIN": 600, "N_TEST": 300,
                         "ROUNDS": 6, "CENTRAL_EPOCHS": 6},
    "distillation.ipynb": {"N_TRAIN": 96, "N_TEST": 48, "EPOCHS": 10, "CHANNEL_EPOCHS": 5,
                           "SNRS": [-5, 10]},
    "encoders_tour.ipynb": {"N_PHOTOS": 4},
    "multitask_eval.ipynb": {"KB_IMAGES": 100, "SNR_DB": 10.0, "N": 2, "SNRS": [10], "CHANNELS": ["awgn"],
                             "PHOTO_SIDE": 160},
}


def parameters(nb) -> tuple[int, set[str]]:
    """The index of ``nb``'s parameters cell (the first code cell, tagged ``parameters``) and the names
    it assigns."""
    index = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    cell = nb.cells[index]
    assert "parameters" in cell.metadata.get("tags", []), "the first code cell is not tagged 'parameters'"
    names = {t.id for node in ast.walk(ast.parse(cell.source)) if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)}
    return index, names


def test_every_notebook_has_a_small_setting():
    assert sorted(SMALL) == [p.name for p in NOTEBOOKS]
    for path in NOTEBOOKS:
        _, names = parameters(nbformat.read(path, as_version=4))
        unknown = set(SMALL[path.name]) - names  # a renamed parameter would silently stop shrinking the run
        assert not unknown, f"{path.name}: {sorted(unknown)} are not parameters of the notebook"


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    index, _ = parameters(nb)
    small = "\n".join(f"{k} = {v!r}" for k, v in SMALL[path.name].items())
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(small, metadata={"tags": ["injected-parameters"]}))
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    # the kernel is a subprocess: it gets the test run's OpenMP settings (tests/conftest.py) explicitly
    # execute() raises CellExecutionError on the first failing cell, so reaching the checks means it ran
    client.execute(env={**os.environ, **THREADS_ENV})
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))  # every cell, in order
    outputs = [o for c in code for o in c.get("outputs", [])]
    # what a reader comes for: each notebook shows at least one figure and prints its figures as text
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} showed no figure"
    assert any(o.output_type == "stream" or "text/markdown" in o.get("data", {}) for o in outputs)
