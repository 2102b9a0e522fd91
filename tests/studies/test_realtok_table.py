"""tools/realtok_table.py: issue 29's gap table, from the committed real-token cells."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from tools import realtok_table

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def test_committed_gaps_are_what_the_cells_give(in_repo):
    committed = pd.read_parquet(realtok_table.OUT / "gaps.parquet")
    pd.testing.assert_frame_equal(
        realtok_table.gaps().round(10), committed.round(10), check_dtype=False
    )


def test_gap_pairs_by_seed_at_each_best_and_at_the_dense_eta(in_repo):
    table = realtok_table.gaps()
    row = table[table["steps"].eq(300) & table["density"].eq(1 / 16)].iloc[0]
    assert row["per_row"] == 4 and row["supar_best_log2_lr"] == -7.5
    assert row["gap_at_best"] == pytest.approx(row["supar_best_loss"] - row["sp_best_loss"])
    assert row["sp_dense_log2_lr"] == row["supar_dense_log2_lr"] == -7.5  # one dense model
    assert row["gap_at_dense_lr_low"] > 0  # SP with the dense η still beats SμPar at 300 steps


def test_a_cell_whose_sp_sweep_is_unfinished_has_no_row(tmp_path, monkeypatch):
    name = "realtok_w64_h300_r16_supar"
    shutil.copytree(REPO / "results" / name, tmp_path / "results" / name)
    monkeypatch.chdir(tmp_path)
    assert realtok_table.gaps().empty
