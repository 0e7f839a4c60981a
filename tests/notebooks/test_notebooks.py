"""Every notebook in notebooks/ runs headless, top to bottom, on its small default setting.

Each cell takes under a minute on an idle 2-core machine; the limits below only catch a hang (a cell:
nbclient's error names it; a notebook: pytest-timeout's, above the suite's per-test one).
"""

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import THREADS_ENV

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 900


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
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
