"""docs/fit.md documents every key that ``write_fit`` writes (top level, optima, drift, joint)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from synthetic_sweeps import make_trials, write_sweep

from hptransfer.analysis.fit import FitSettings, fit_sweep, write_fit

DOC = Path(__file__).resolve().parents[2] / "docs" / "fit.md"


def documented_keys() -> set[str]:
    """Every quoted key of the fit.json schema block in docs/fit.md."""
    schema = DOC.read_text().split("## `fit.json`", 1)[1].split("```text", 1)[1].split("```")[0]
    return set(re.findall(r'"(\w+)"', schema))


def test_every_key_a_fit_writes_is_documented(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path / "demo", make_trials(), base={"width": 64})
    fit = json.loads(write_fit(fit_sweep(sweep, FitSettings(n_boot=50)), sweep).read_text())
    group_axes = set(fit["group_axes"])
    keys = set(fit) | set(fit["settings"]) | set(fit["provenance"]) | set(fit["horizon"])
    keys |= {k for row in fit["optima"] + fit["drift"] for k in row} - group_axes
    keys |= {k for hps in fit["base_hps"].values() for hp in hps.values() for k in hp}
    undocumented = keys - documented_keys()
    assert not undocumented, f"fit.json keys missing from docs/fit.md: {sorted(undocumented)}"
