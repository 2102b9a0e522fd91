"""Paired-seed comparisons: the interval on the difference, and "within noise"."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy.stats import t

from hptransfer.analysis.paired import best_point_comparison, paired_difference
from hptransfer.transfer import gain_rows


def test_paired_difference_is_students_t_over_the_per_seed_differences() -> None:
    a, b = {0: 2.0, 1: 2.5, 2: 3.0, 9: 1.0}, {0: 1.5, 1: 1.7, 2: 2.6}
    diff = paired_difference(a, b)
    d = [0.5, 0.8, 0.4]  # seed 9 is not paired
    mean, sd = sum(d) / 3, math.sqrt(sum((x - sum(d) / 3) ** 2 for x in d) / 2)
    half = t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert diff.seeds == 3 and diff.mean == pytest.approx(mean)
    assert (diff.low, diff.high) == pytest.approx((mean - half, mean + half))
    assert not diff.within_noise and "within noise" not in diff.text()


def test_an_interval_covering_zero_is_within_noise() -> None:
    diff = paired_difference({0: 1.0, 1: 2.0}, {0: 1.1, 1: 1.8})
    assert diff.low < 0 < diff.high and diff.within_noise
    assert diff.text().endswith("within noise")
    one = paired_difference({0: 1.0}, {0: 2.0})
    assert one.text() == "-1.000 (1 seed: no interval)" and not one.within_noise
    assert paired_difference({0: 1.0}, {1: 1.0}) is None
    assert paired_difference({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}).text().startswith("0 (identical")


def _runs(losses: dict[str, list[float]], lr: float = 0.01, **cell) -> pd.DataFrame:
    rows = [
        {"parameterization": p, "seed": s, "val_loss": loss, "lr": lr, "status": "completed",
         "diverged": False, "steps": 10, "max_steps": 10, "model": "gpt", "depth": 2,
         "width": 64, "density": 0.25, **cell}
        for p, values in losses.items()
        for s, loss in enumerate(values)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_best_point_comparison_pairs_each_parameterization_at_its_own_best() -> None:
    trials = pd.concat(
        [
            _runs({"sp": [2.30, 2.40, 2.35], "supar": [2.10, 2.21, 2.14]}, lr=0.01),
            _runs({"sp": [2.20, 2.31, 2.24], "supar": [2.50, 2.60, 2.55]}, lr=0.02),
            _runs({"sp": [2.0, 2.0, 2.0]}, density=1.0),  # one parameterization: skipped
        ]
    )
    table = best_point_comparison(trials, ["lr"]).set_index("parameterization")
    assert table.loc["sp", "lr"] == 0.02 and table.loc["supar", "lr"] == 0.01
    assert table.loc["supar", "vs"] == "sp" and table.loc["sp", "difference"] == ""
    assert table.loc["supar", "difference"].startswith("-0.100 [")
    assert "within noise" not in table.loc["supar", "difference"]
    assert len(table) == 2


def test_transfer_table_states_the_paired_interval() -> None:
    rows = _runs({"supar": [2.10, 2.30], "sp": [2.12, 2.25]})
    (row,) = gain_rows(rows, "supar", ("sp",))
    assert row["supar gain vs sp"].endswith("% (within noise)")
    assert row["supar − sp, 95% CI"].startswith("+0.015 [")
    clear = _runs({"supar": [2.10, 2.30, 2.20], "sp": [2.20, 2.41, 2.29]})
    (row,) = gain_rows(clear, "supar", ("sp",))
    assert row["supar gain vs sp"].startswith("+4.") and "noise" not in row["supar gain vs sp"]
