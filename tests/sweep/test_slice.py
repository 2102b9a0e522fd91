"""``search.slice``: a finer slice of one HP at each cell's best searched point."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from conftest import tiny_spec

from hptransfer.runtime.identity import point_id, trial_row
from hptransfer.store import TRIALS
from hptransfer.sweep import parse_spec
from hptransfer.sweep.run import _expected_runs
from hptransfer.sweep.trials import grid_runs, slice_runs

SPACE = {
    "lr": {"log2_range": [-9, -5], "step": 1},
    "init_std": {"values": [0.01, 0.02, 0.04]},
}
SLICE = {"hp": "lr", "octaves": 1, "step": 0.5, "seeds": [0, 1, 2]}


def stored(spec, runs) -> pd.DataFrame:
    """Store rows of ``runs`` with a loss whose minimum is at lr 2^-7, init_std 0.02."""
    rows = []
    for run in runs:
        loss = 3 + (math.log2(run.hps.lr) + 7) ** 2 + (math.log2(run.hps.init_std) + 5.64) ** 2
        outcome = {"status": "completed", "steps": 10, "val_loss": loss, "train_loss": loss}
        rows.append(trial_row(point_id(run), run, spec.name, spec.hash, outcome))
    return pd.DataFrame(rows, columns=TRIALS.names)


def test_slice_runs_sit_at_the_best_searched_point_with_their_own_seeds():
    spec = parse_spec(tiny_spec(search={"space": SPACE, "slice": SLICE}, seeds=[0]))
    cell = spec.cells[0]
    runs = slice_runs(spec, cell, stored(spec, grid_runs(spec)))
    assert len(runs) == 15 and {r.seed for r in runs} == {0, 1, 2}
    assert sorted({math.log2(r.hps.lr) for r in runs}) == [-8, -7.5, -7, -6.5, -6]
    assert {r.hps.init_std for r in runs} == {0.02}
    assert all(r.parameterization == cell.parameterization for r in runs)
    # Integer-octave points with a searched seed are the grid's own runs (one trial id).
    grid_ids = {point_id(r) for r in grid_runs(spec)}
    assert sum(point_id(r) in grid_ids and r.seed == 0 for r in runs) == 3


def test_no_slice_until_the_search_is_complete_and_slices_do_not_move_it():
    spec = parse_spec(tiny_spec(search={"space": SPACE, "slice": SLICE}, seeds=[0]))
    cell, grid = spec.cells[0], grid_runs(spec)
    assert slice_runs(spec, cell, stored(spec, grid[:-1])) == []
    first = slice_runs(spec, cell, stored(spec, grid))
    # A resumed sweep sees the slice's runs too; its slice is planned from the grid alone.
    assert slice_runs(spec, cell, stored(spec, [*grid, *first])) == first


@pytest.mark.parametrize("seeds", [[0], [0, 1]])
def test_expected_runs_count_the_slice_once_per_distinct_run(seeds):
    spec = parse_spec(tiny_spec(search={"space": SPACE, "slice": {"hp": "lr"}}, seeds=seeds))
    grid = grid_runs(spec)
    assert _expected_runs(spec, stored(spec, [])) == len(grid) + 5 * len(seeds)
    # Planned: 3 of the 5 slice points are grid points, trained once.
    assert _expected_runs(spec, stored(spec, grid)) == len(grid) + 2 * len(seeds)
