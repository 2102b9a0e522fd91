"""Execute ``notebooks/analysis.ipynb`` on the default flow's results and commit it executed.

    python tools/execute_notebook.py    # after results/default_flow changes

The notebook runs headless (nbclient) from the repository root on ``results/default_flow``, so
GitHub shows its tables and figures; the run's timestamps are dropped, so a re-execution on the
same results changes only what the results change. ``tests/analysis/test_analysis_notebook.py``
re-executes it and checks the committed outputs have the same shape (not the same numbers).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "analysis.ipynb"
DEFAULT_SWEEP = "results/default_flow"  # relative to the repository root, as the notebook prints


def execute(notebook: Path = NOTEBOOK, sweep: str = DEFAULT_SWEEP) -> nbformat.NotebookNode:
    """The notebook executed from the repository root on ``sweep`` (this checkout's package)."""
    nb = nbformat.read(notebook, as_version=4)
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    environment = {"HPTRANSFER_SWEEP": sweep, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)  # the kernel inherits the environment it starts in
    try:
        client = NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
        )
        client.execute()
    finally:
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.update({name: value})
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    return nb


def main() -> None:
    nbformat.write(execute(), NOTEBOOK)
    print(f"wrote {NOTEBOOK.relative_to(REPO)}, executed on {DEFAULT_SWEEP}")


if __name__ == "__main__":
    main()
