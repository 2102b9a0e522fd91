"""The README's default flow: fitting its committed trials reproduces its committed fit.json.

A change to the fit that moves an optimum, an interval or a flag of the flow every user runs
first must show up here and be committed with the refreshed ``results/default_flow/fit.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from hptransfer.analysis.fit import fit_sweep

FLOW = Path(__file__).resolve().parents[2] / "results" / "default_flow"
VOLATILE = ("created", "provenance")  # when and by which commit/versions it was written


def _comparable(document: dict) -> dict:
    return {key: _rounded(value) for key, value in document.items() if key not in VOLATILE}


def _rounded(value: object) -> object:
    """Floats to 10 significant digits: the last bits of a sum move with BLAS and its threads."""
    if isinstance(value, float):
        return float(f"{value:.10g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def test_default_flow_fit_reproduces_committed_fit_json():
    committed = json.loads((FLOW / "fit.json").read_text())
    refit = json.loads(json.dumps(fit_sweep(FLOW).to_json()))  # as fit.json holds it
    assert _comparable(refit) == _comparable(committed)
