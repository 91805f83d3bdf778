"""The notebooks under notebooks/: stored clean, and each one runs top to bottom in a fresh kernel."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 300
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
#: every notebook ends with the interactive widget; these also walk through a session in code first
SESSION_NOTEBOOKS = ("02_resnet50.ipynb", "03_transformer.ipynb")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_three_notebooks_exist() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {"01_quickstart.ipynb", "02_resnet50.ipynb", "03_transformer.ipynb"} <= names, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs_and_with_a_kernelspec(path: Path) -> None:
    book = _load(path)
    spec = book.get("metadata", {}).get("kernelspec", {})
    # Without a kernelspec JupyterLab opens a kernel-selection dialog that blocks "run all".
    assert spec.get("name") == "python3", f"{path.name}: kernelspec {spec!r}"
    for index, cell in enumerate(book["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name} cell {index} has stored outputs"
            assert cell.get("execution_count") is None, f"{path.name} cell {index} has an execution count"
    assert "widgets" not in book["metadata"], f"{path.name} stores widget state"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_clean(path: Path, tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat", reason="nbformat is in the test extra")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is in the test extra")
    pytest.importorskip("ipykernel", reason="ipykernel is in the test extra")

    copy = tmp_path / path.name  # run in a scratch folder: whatever the notebook writes stays out of the repo
    shutil.copy(path, copy)
    book = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(book, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError with the cell's traceback on the first failing cell
    elapsed = time.perf_counter() - start

    problems = []
    for index, cell in enumerate(book.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                problems.append(f"cell {index}: {output.get('ename')}: {output.get('evalue')}")
            elif output.get("output_type") == "stream" and output.get("name") == "stderr":
                problems.append(f"cell {index} wrote to stderr: {output.get('text', '')[:500]}")
    assert not problems, f"{path.name} did not run clean:\n" + "\n".join(problems)
    code = [cell for cell in book.cells if cell.cell_type == "code"]
    shown = [o for o in code[-1].get("outputs", []) if WIDGET_MIME in o.get("data", {})]
    assert shown, f"{path.name} must end with the interactive widget, not a static figure"
    print(f"{path.name}: executed in {elapsed:.1f} s")


@pytest.mark.parametrize("name", SESSION_NOTEBOOKS)
def test_notebook_shows_a_session_find_a_block_and_a_comparison(name: str) -> None:
    """02 and 03 tell a session: find a node (as the Find box does), keep a block in FP32, compare two plans."""
    source = "\n".join("".join(c["source"]) for c in _load(NOTEBOOK_DIR / name)["cells"] if c["cell_type"] == "code")
    assert "find_nodes(" in source and ".find(" in source
    assert "(\\.|$)" in source  # a block: the module and everything under it, one regex
    assert "ex.compare(" in source
    last = [c for c in _load(NOTEBOOK_DIR / name)["cells"] if c["cell_type"] == "code"][-1]
    assert "ex.figure(" not in "".join(last["source"])
