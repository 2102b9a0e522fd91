"""What a sweep trains: jobs of runs, and what a search scores them by.

A *job* is one Ray trial: one HP point, trained for one seed (grid) or for every seed in
turn (Optuna, which scores the point by its mean over seeds). Each run of a job becomes one
row of ``trials.parquet`` (its ids and row: :mod:`hptransfer.runtime.identity`). At the base
shape SP, μP and SμPar ask for different runs that train the same model (equal ``run_key``):
one is trained, the others are its *twins*, stored with the same results and ``same_as``
naming the trained one.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from hptransfer.config import RunConfig
from hptransfer.runtime.identity import (
    CONFIG_COLUMNS,
    config_hash,
    point_id,
    run_key,
    trial_id,
    trial_row,
)
from hptransfer.sweep.spec import SweepSpec

DIVERGED_CAP = 1e6  # objective of a run that diverged to NaN/inf


@dataclass(frozen=True)
class Job:
    """One Ray trial: ``runs`` trained one after another, stored under ``trial_ids``.

    ``twins``: runs that train the same model as a single-run job's run (same
    :func:`run_key`), not trained themselves but stored with its results.
    """

    point_id: str
    runs: tuple[RunConfig, ...]
    twins: tuple[RunConfig, ...] = ()

    @property
    def trial_ids(self) -> tuple[str, ...]:
        own = tuple(trial_id(self.point_id, run.seed) for run in self.runs)
        return own + tuple(trial_id(point_id(run), run.seed) for run in self.twins)


def with_hps(run: RunConfig, hps: Mapping[str, float], seed: int | None = None) -> RunConfig:
    seed = run.seed if seed is None else seed
    return dataclasses.replace(run, hps=dataclasses.replace(run.hps, **hps), seed=seed)


def jobs_for_runs(runs: Sequence[RunConfig]) -> list[Job]:
    """One single-run job per run, keyed by its configuration (duplicates dropped)."""
    jobs = {trial_id(point_id(run), run.seed): Job(point_id(run), (run,)) for run in runs}
    return list(jobs.values())


def merge_twins(jobs: Sequence[Job]) -> list[Job]:
    """Single-run jobs that train the same model (equal :func:`run_key`) as one job: the
    first is trained, the others are its twins. Multi-run jobs are kept as they are."""
    merged: dict[str, Job] = {}
    kept: list[Job] = []
    for job in jobs:
        if len(job.runs) != 1 or job.twins:
            kept.append(job)
            continue
        key = run_key(job.runs[0])
        first = merged.get(key)
        if first is None:
            merged[key] = job
        else:
            merged[key] = dataclasses.replace(first, twins=(*first.twins, job.runs[0]))
    return kept + list(merged.values())


def grid_runs(spec: SweepSpec) -> list[RunConfig]:
    """Every run of a grid sweep: cells × the product of the HP values × seeds."""
    names = spec.search.names
    grids = [hp.values for hp in spec.search.space]
    return [
        with_hps(cell, dict(zip(names, point, strict=True)), seed)
        for cell in spec.cells
        for point in itertools.product(*grids)
        for seed in spec.seeds
    ]


def slice_runs(spec: SweepSpec, cell: RunConfig, trials: pd.DataFrame) -> list[RunConfig]:
    """The runs of ``spec.search.slice`` in ``cell``: none until the cell's search is done.

    The best point is taken over the search's own runs only (never the slice's), so a resumed
    sweep plans the same slice.
    """
    cut = spec.search.slice
    if cut is None:
        return []
    best = best_searched_point(spec, cell, trials)
    if best is None:
        return []
    seeds = cut.seeds or spec.seeds
    return [
        with_hps(cell, {**best, cut.hp: best[cut.hp] * 2.0**offset}, seed)
        for offset in cut.offsets()
        for seed in seeds
    ]


def slice_variant_ids(spec: SweepSpec, trials: pd.DataFrame) -> set[str]:
    """Trial ids of the runs a slice of ``spec`` may have trained at any grid point, at the
    slice HP's stored values: a grid grown past the point a slice was run at keeps them."""
    cut = spec.search.slice
    if cut is None or cut.hp not in trials:
        return set()
    values = sorted(set(trials[cut.hp].dropna().astype(float)))
    names = spec.search.names
    return {
        trial_id(point_id(run), run.seed)
        for cell in spec.cells
        for point in itertools.product(*(hp.values for hp in spec.search.space))
        for value in values
        for seed in cut.seeds or spec.seeds
        for run in [with_hps(cell, {**dict(zip(names, point, strict=True)), cut.hp: value}, seed)]
    }


def best_searched_point(
    spec: SweepSpec, cell: RunConfig, trials: pd.DataFrame
) -> dict[str, float] | None:
    """The cell's searched HP point with the lowest mean objective over its seeds, or None
    while a planned grid run of the cell is missing."""
    names = spec.search.names
    if spec.search.algorithm == "grid":
        planned = {
            trial_id(point_id(run), run.seed)
            for run in grid_runs(spec)
            if dataclasses.replace(run, hps=cell.hps, seed=0) == cell
        }
        mine = trials[trials["trial_id"].isin(planned)]
        if len(mine) < len(planned):
            return None
    else:
        mine = trials[trials["point_id"].str.startswith(f"{config_hash(cell)[:8]}-n")]
    mine = mine[mine["status"] != "error"]
    if mine.empty:
        return None
    scores = [objective(*r) for r in mine[["val_loss", "train_loss", "diverged"]].values]
    means = mine.assign(score=scores).groupby(list(names))["score"].mean()
    best = means.idxmin()
    return {
        name: float(v) for name, v in zip(names, best if len(names) > 1 else (best,), strict=True)
    }


def objective(val_loss: float, train_loss: float, diverged: bool) -> float:
    """What a search minimises: the validation loss; for a diverged run, the training loss
    it reached (above the divergence threshold, so worse than any converged run), capped."""
    if not diverged and math.isfinite(val_loss):
        return val_loss
    return min(train_loss, DIVERGED_CAP) if math.isfinite(train_loss) else DIVERGED_CAP


def twin_row(row: Mapping[str, Any], run: RunConfig, sweep: str, spec_hash: str) -> dict[str, Any]:
    """The row of ``run``, a twin of the run stored as ``row``: ``row``'s outcome (metrics,
    status, provenance) under ``run``'s configuration, ``same_as`` naming the trained run."""
    asked = trial_row(point_id(run), run, sweep, spec_hash, {"status": row["status"]})
    assert asked["run_key"] == row["run_key"], "a twin must train the same model"
    same_as = row.get("same_as") or row["trial_id"]
    return {**row, **{name: asked[name] for name in CONFIG_COLUMNS}, "same_as": same_as}
