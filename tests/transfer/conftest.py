"""Fixtures for the transfer tests: a tiny fitted sweep (see fitted_sweep.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fitted_sweep import write_sweep


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sweep(tmp_path_factory.mktemp("fitted") / "results")
