"""The notebooks run top to bottom on the real data, and define nothing reusable."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = (
    "01_explore_airline_tweets.ipynb",
    "02_train_and_evaluate.ipynb",
    "03_alerts_on_airline_tweets.ipynb",
    "04_audiences_airline_tweets.ipynb",
)


def code_cells(name: str) -> list[str]:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_import_from_the_package_and_define_nothing(name):
    sources = code_cells(name)
    assert sources, f"{name} has no code"
    trees = [ast.parse(source) for source in sources]
    defined = [
        type(node).__name__
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda)
    ]
    assert defined == [], f"{name} defines {defined}: put reusable code in the package"
    imported = {
        node.module.split(".")[0]
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported & {"models", "streaming", "app"}
    assert any("SHARED_DATA" in source for source in sources)


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_on_the_shared_data(name, shared_data, monkeypatch, tmp_path):
    from nbclient import NotebookClient

    monkeypatch.setenv("SHARED_DATA", str(shared_data))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where notebook 02 saves its model version
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="python3",  # ipykernel's kernel runs with this interpreter: the venv's
        timeout=600,  # a cell that hangs fails; how fast they run is not a test's business
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError with the cell and traceback on failure
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
