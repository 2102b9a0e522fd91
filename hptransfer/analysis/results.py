"""Reading a sweep's results folder for analysis: Parquet tables and the spec's base shape.

The folder's files are named and read by :mod:`hptransfer.store` (``trials.parquet``: one row
per trial; ``curves.parquet``: one row per trial and logged step; ``spec.yaml``); this module
checks the columns analysis needs. Analysis never imports the sweep, Ray or torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hptransfer.errors import ResultsError, yaml_problem
from hptransfer.param import BaseHPs
from hptransfer.store import Location, ResultsStore, location, read_frame
from hptransfer.store.folder import (
    CURVES_FILE,
    RESULTS_ROOT,
    SPEC_FILE,
    TRIALS_FILE,
    latest,
    parts_folder,
)

HP_NAMES = BaseHPs.names()
# Columns that define a group of trials (the HP grid is fitted within each group).
GROUP_AXES = ("parameterization", "model", "depth", "width", "density")
# A run's horizon in steps; a group axis only in sweeps over several (``train.steps: [..]``).
HORIZON_AXIS = "max_steps"
# Base settings a sweep may search as a list (``model.readout_zero_init: [false, true]``):
# categorical, so not fitted on a log2 axis but group axes where they vary; ``fit`` keeps
# the better value at the base shape.
SETTING_AXES = ("readout_zero_init",)
TRIAL_COLUMNS = (
    "trial_id",
    "parameterization",
    "width",
    "density",
    "seed",
    "steps",
    "diverged",
    "status",
)
CURVE_COLUMNS = ("trial_id", "step")


def latest_sweep(root: Location = RESULTS_ROOT) -> Location:
    """The sweep folder under ``root`` whose trials were stored last."""
    found = [p for name in (TRIALS_FILE, parts_folder(TRIALS_FILE)) if (p := latest(root, name))]
    table = max(found, key=lambda p: p.stat().st_mtime, default=None)
    if table is None:
        raise ResultsError(
            f"no sweep results under {root}/ (no */{TRIALS_FILE}): run `hptransfer sweep` first"
        )
    return table.parent


def find_sweep(
    sweep: str | Location | None = None, root: str | Location = RESULTS_ROOT
) -> Location:
    """The sweep folder ``sweep`` (a path, or an object storage URI such as
    ``s3://bucket/results/proxy``), or when None the latest sweep under ``root``."""
    return location(sweep) if sweep else latest_sweep(location(root))


def read_table(path: Path, required: Sequence[str]) -> pd.DataFrame:
    """Read one Parquet table, checking that it exists, parses and has ``required`` columns."""
    return read_frame(path, required)


def read_trials(sweep_dir: Path) -> pd.DataFrame:
    """The sweep's trials table (one row per trial), its uncompacted parts included."""
    store = ResultsStore(sweep_dir)
    if not store.trials_parts.is_dir():
        return read_table(store.trials_path, TRIAL_COLUMNS)
    return _checked(store.read_trials(), TRIAL_COLUMNS, store.trials_path)


def read_curves(sweep_dir: Path, name: str = CURVES_FILE) -> pd.DataFrame | None:
    """A curves table (one row per trial and step), or None when there is none."""
    store = ResultsStore(sweep_dir, curves_file=name)
    if store.curves_parts.is_dir():
        return _checked(store.read_all_curves(), CURVE_COLUMNS, store.curves_path)
    return read_table(store.curves_path, CURVE_COLUMNS) if store.curves_path.exists() else None


def _checked(frame: pd.DataFrame, required: Sequence[str], path: Path) -> pd.DataFrame:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ResultsError(f"{path} lacks column(s) {', '.join(missing)}")
    return frame


def read_spec_document(sweep_dir: Path) -> dict[str, Any] | None:
    """spec.yaml as the sweep wrote it (a mapping), None when the folder has none; a file
    that is not a YAML mapping is a one-line :class:`ResultsError` naming it. Analysis reads
    spec.yaml through this only (the sweep parses it: :func:`hptransfer.sweep.load_spec`)."""
    path = location(sweep_dir) / SPEC_FILE
    if not path.is_file():
        return None
    import yaml

    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ResultsError(f"{path} is not valid YAML ({yaml_problem(exc)})") from None
    if not isinstance(spec, dict):
        raise ResultsError(f"{path} is not a sweep spec (a YAML mapping)")
    return spec


def spec_base(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The ``base`` shape (width, density, depth, heads) of a spec.yaml document, or None."""
    base = spec.get("base")
    if not isinstance(base, dict) or "width" not in base:
        return None
    return {k: base[k] for k in ("width", "density", "depth", "heads") if k in base}
