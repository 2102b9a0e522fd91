"""The optimum's drift with the horizon: log2 η*(D) = a − γ·log2 D fitted per group."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hptransfer.analysis.fit import load_fit
from hptransfer.analysis.horizon import HorizonFit, line
from tests.transfer.fitted_sweep import GAMMA, TOKENS_PER_STEP, optimum_log2_lr, write_sweep

HORIZONS = (10, 30, 90)


@pytest.fixture(scope="module")
def fit(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("results")
    return load_fit(write_sweep(root, horizons=HORIZONS, seeds=(0, 1, 2)))


def test_line_recovers_an_exact_power_law():
    x = np.log2([1e3, 1e4, 1e5])
    intercept, gamma = line(x, 2.0 - 0.3 * x)
    assert (intercept, gamma) == pytest.approx((2.0, 0.3))


def test_gamma_per_group_with_an_interval_covering_the_truth(fit):
    assert {row["parameterization"] for row in fit.budget} == {"sp", "supar"}
    for row in fit.budget:
        line_fit = HorizonFit.from_json(row)
        assert line_fit.gamma == pytest.approx(GAMMA, abs=0.05)
        lo, hi = line_fit.ci95
        assert lo <= GAMMA <= hi and hi - lo < 0.5
        assert [h["steps"] for h in row["horizons"]] == list(HORIZONS)
        assert [h["tokens"] for h in row["horizons"]] == [s * TOKENS_PER_STEP for s in HORIZONS]
        held_out = 270 * TOKENS_PER_STEP
        assert line_fit.log2_at(held_out) == pytest.approx(optimum_log2_lr(270), abs=0.15)
        low, high = line_fit.interval(held_out)
        assert low < line_fit.log2_at(held_out) < high


def test_base_hps_are_the_longest_horizons_and_optima_are_per_horizon(fit):
    assert fit.horizon == {"steps": 90, "tokens": 90 * TOKENS_PER_STEP, "batch": 4}
    assert math.log2(fit.base_hps["supar"]["lr"].value) == pytest.approx(
        optimum_log2_lr(90), abs=0.1
    )
    supar = fit.optima[fit.optima["parameterization"].eq("supar")]
    assert sorted(supar["max_steps"]) == list(HORIZONS)
    drift = fit.drift[fit.drift["axis"].eq("max_steps")]
    assert drift["octaves"].iloc[0] == pytest.approx(GAMMA * math.log2(9), abs=0.1)


def test_a_one_horizon_sweep_has_no_budget_lines(tmp_path: Path):
    fit = load_fit(write_sweep(tmp_path))
    assert fit.budget == [] and "max_steps" not in fit.optima
