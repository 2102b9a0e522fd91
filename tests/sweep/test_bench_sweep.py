"""``hptransfer bench sweep``: the table, the target verdict, and (slow) a real tiny run."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest

from hptransfer.bench import positive_int
from hptransfer.bench import sweep as bench


def frame(ray_ratio: float, trial_s: float) -> pd.DataFrame:
    rows = [
        {"method": method, "trial_s": trial_s, "steps": 10, "wall_s": 8 * trial_s * ratio,
         "ratio_to_plain": ratio, "startup_s": 0.0, "train_s": 8 * trial_s,
         "overhead_per_trial_s": 0.0}
        for method, ratio in (("optuna_loop", 1.0), ("ray_tune", ray_ratio))
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_target_verdicts():
    assert "1.10 (met)" in bench.target_check(frame(1.1, 12.0))
    assert "1.40 (MISSED)" in bench.target_check(frame(1.4, 12.0))
    assert "not measured" in bench.target_check(frame(3.0, 1.0))
    assert "ray_tune" in bench.format_table(frame(1.1, 12.0))


def test_bad_arguments_are_rejected():
    with pytest.raises(argparse.ArgumentTypeError):
        bench._seconds("1,-2")
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int("0")


@pytest.mark.slow
def test_tiny_bench_writes_parquet(tmp_path, capsys):
    from hptransfer.cli.main import main

    args = ["bench", "sweep", "--seconds", "0.2", "--trials", "2", "--out", str(tmp_path)]
    assert main(args) == 0
    table = pd.read_parquet(tmp_path / "sweep.parquet")
    assert set(table["method"]) == {"optuna_loop", "ray_tune"} and len(table) == 2
    assert "target not measured" in capsys.readouterr().out


def test_many_tiny_runs_are_distinct_and_the_summary_says_what_was_met():
    from hptransfer.bench import many
    from hptransfer.runtime.identity import point_id

    assert len({point_id(run) for run in many.tiny_runs(50)}) == 50
    row = {"trials": 1000, "concurrency": 2, "stored_rows": 1000, "stored_once": True,
           "wall_s": 300.0, "startup_s": 10.0, "train_s": 40.0, "overhead_per_trial_s": 0.54,
           "rss_start_mb": 400.0, "rss_growth_mb": 250.0, "load_average": 1.0,
           "cpus": 2}  # fmt: skip
    lines = many.summary_lines(pd.DataFrame([row]))
    assert "exactly once: yes" in lines[0] and "540 ms per trial" in lines[1]
    assert "250 MB (target < 200: MISSED)" in lines[2]


@pytest.mark.slow
def test_many_tiny_trials_are_each_stored_once(tmp_path, capsys):
    from hptransfer.cli.main import main

    assert main(["bench", "many", "--trials", "6", "--out", str(tmp_path)]) == 0
    table = pd.read_parquet(tmp_path / "many.parquet")
    assert table["stored_once"].all() and (tmp_path / "many.png").is_file()
