"""notebooks/analysis.ipynb runs headless (nbclient) on a small synthetic sweep."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from synthetic_sweeps import make_trials, write_sweep

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "analysis.ipynb"


def test_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_executes_on_a_synthetic_sweep(tmp_path: Path, monkeypatch) -> None:
    sweep = write_sweep(tmp_path / "results" / "nb", make_trials(widths=(64,)), base={"width": 64})
    monkeypatch.setenv("HPTRANSFER_SWEEP", str(sweep))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert f"sweep folder: {sweep}" in text and "fitted in memory" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3
    assert "one_octave_off" in text  # the question's answer table
    assert not [o for o in outputs if o.output_type == "error"]
