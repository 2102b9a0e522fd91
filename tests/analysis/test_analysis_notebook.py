"""notebooks/analysis.ipynb: committed executed on results/default_flow (GitHub shows its
figures), and it runs headless (nbclient) on those results and on a small synthetic sweep."""

from __future__ import annotations

import base64

import nbformat
import pytest
from synthetic_sweeps import make_trials, write_sweep

from tools.execute_notebook import DEFAULT_SWEEP, NOTEBOOK, REPO, execute

MAX_PNG_BYTES = 150_000  # modest figures keep the committed notebook small
RERUN = "re-execute it: python tools/execute_notebook.py"


def outputs(nb: nbformat.NotebookNode) -> list[list[tuple[str, tuple[str, ...]]]]:
    """Per code cell, each output's type and MIME types: what a re-run on the same results
    reproduces, whatever the numbers."""
    return [
        [(o.output_type, tuple(sorted(o.get("data", {})))) for o in cell.outputs]
        for cell in nb.cells
        if cell.cell_type == "code"
    ]


def pngs(nb: nbformat.NotebookNode) -> list[bytes]:
    data = [o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    return [base64.b64decode(d["image/png"]) for d in data if "image/png" in d]


def text(nb: nbformat.NotebookNode) -> str:
    found = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in found)


@pytest.fixture(scope="module")
def committed() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def test_the_notebook_is_committed_executed_on_the_default_flow(committed) -> None:
    code = [c for c in committed.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), f"not executed in order: {RERUN}"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert f"sweep folder: {DEFAULT_SWEEP}\n" in text(committed), RERUN
    figures = pngs(committed)
    assert len(figures) >= 3 and all(png.startswith(b"\x89PNG") for png in figures)
    assert max(map(len, figures)) < MAX_PNG_BYTES


def test_the_committed_outputs_are_what_a_run_on_the_default_flow_gives(committed) -> None:
    if not (REPO / DEFAULT_SWEEP / "trials.parquet").is_file():
        pytest.skip(f"{DEFAULT_SWEEP} is not in this checkout")
    fresh = execute()
    assert not [o for c in fresh.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert outputs(fresh) == outputs(committed), f"the committed outputs are stale: {RERUN}"


def test_the_notebook_executes_on_a_synthetic_sweep(tmp_path) -> None:
    sweep = write_sweep(tmp_path / "results" / "nb", make_trials(widths=(64,)), base={"width": 64})
    nb = execute(sweep=str(sweep))
    assert f"sweep folder: {sweep}" in text(nb) and "fitted in memory" in text(nb)
    assert len(pngs(nb)) == 3
    assert "one_octave_off" in text(nb)  # the question's answer table
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
