"""Runs whose model is stored already: copied, not trained.

A pending run is a *twin* of a stored run when both have the same
:func:`~hptransfer.runtime.identity.run_key`. Stored runs come from the sweep's own folder (a
twin added by ``--extend``, or one whose twin was stored before it) and from the folders
given with ``--reuse`` (another sweep of the same study: the LR-vs-density sweeps of SP, μP
and SμPar share every μP run with SP). The twin's row repeats the stored outcome, with
``same_as`` naming the trained trial (``<folder>/<trial_id>`` for another folder's), and its
curve points are copied with it.

Rows written before run keys were stored get theirs from the planned run of the same id (the
sweep's own folder) or from the folder's ``spec.yaml`` grid (another folder).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from hptransfer.errors import ConfigError, ResultsError
from hptransfer.runtime.identity import point_id, run_key, trial_id
from hptransfer.store import TRIALS, ResultsStore, location
from hptransfer.sweep.trials import Job, grid_runs, twin_row


@dataclass(frozen=True)
class Donor:
    """A stored run: its row, the store it is in, the label its twins' ``same_as`` gets."""

    row: dict[str, Any]
    store: ResultsStore
    label: str


def store_twins_of_stored(
    pending: list[Job],
    planned: Sequence[Job],
    store: ResultsStore,
    reuse: Sequence[Path],
    *,
    sweep: str,
    spec_hash: str,
) -> list[Job]:
    """Store each pending single run whose model is stored already; return the other jobs."""
    if not pending:
        return pending
    donors = _donors(store, planned, reuse)
    copies: list[tuple[dict[str, Any], Donor]] = []
    rest = []
    for job in pending:
        key = run_key(job.runs[0]) if len(job.runs) == 1 else None
        donor = donors.get(key) if key else None
        if donor is None:
            rest.append(job)
            continue
        trained = donor.row.get("same_as") or donor.row["trial_id"]
        source = {**donor.row, "run_key": key, "same_as": donor.label + trained}
        copies.append((twin_row(source, job.runs[0], sweep, spec_hash), donor))
    if copies:
        store.append([row for row, _ in copies], _curves(copies))
    return rest


def check_reuse(folders: Sequence[Path], own: Path) -> None:
    """Each ``--reuse`` folder holds stored runs and is not the sweep's own folder."""
    for folder in folders:
        if not ResultsStore(folder).exists():
            raise ResultsError(f"--reuse {folder}: no stored runs there (is it a sweep folder?)")
        if location(folder).resolve() == location(own).resolve():
            raise ConfigError(f"--reuse {folder} is this sweep's own folder")


def _donors(store: ResultsStore, planned: Sequence[Job], reuse: Sequence[Path]) -> dict:
    own_keys = {
        trial_id(job.point_id, run.seed): run_key(run)
        for job in planned
        if len(job.runs) == 1
        for run in job.runs
    }
    donors: dict[str, Donor] = {}
    sources = [(store, own_keys, "")]
    sources += [(ResultsStore(p), _spec_keys(p), f"{location(p).name}/") for p in reuse]
    for source, keys_of, label in sources:
        trials = source.read_trials()
        trials = trials[trials["status"] != "error"]
        keys = trials["run_key"].fillna(trials["trial_id"].map(keys_of))
        rows = pa.Table.from_pandas(trials, schema=TRIALS, preserve_index=False).to_pylist()
        for key, row in zip(keys, rows, strict=True):  # nulls as None, not NaN
            if isinstance(key, str) and key:
                donors.setdefault(key, Donor(row, source, label))  # the own folder first
    return donors


def _spec_keys(folder: Path) -> dict[str, str]:
    """Run keys of a grid sweep folder's planned runs, from its spec.yaml (none if it has no
    usable grid spec)."""
    from hptransfer.sweep.parse import parse_text

    text = ResultsStore(folder).read_spec()
    try:
        spec = parse_text(text, source=str(folder)) if text else None
    except ConfigError:
        return {}
    if spec is None or spec.search.algorithm != "grid":
        return {}
    return {trial_id(point_id(run), run.seed): run_key(run) for run in grid_runs(spec)}


def _curves(copies: list[tuple[dict[str, Any], Donor]]) -> list[dict[str, Any]]:
    """The donors' curve points under their twins' ids."""
    points: list[dict[str, Any]] = []
    by_store: dict[int, pd.DataFrame] = {}
    for row, donor in copies:
        curves = by_store.setdefault(id(donor.store), donor.store.read_curves())
        mine = curves[curves["trial_id"] == donor.row["trial_id"]]
        points += mine.assign(trial_id=row["trial_id"]).to_dict("records")
    return points
