"""Fixtures for the analysis tests: a synthetic results folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthetic_sweeps import make_trials, write_sweep


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    """A small synthetic sweep under tmp_path/results/demo (2 params × 2 widths × 2 densities)."""
    return write_sweep(tmp_path / "results" / "demo", make_trials(), base={"width": 64})
