"""The optimum's drift with the horizon: log2 η*(D) = a − γ·log2 D fitted per group."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from hptransfer.analysis.fit import load_fit
from hptransfer.analysis.horizon import (
    HorizonFit,
    HorizonGrid,
    fit_horizon,
    holdout_table,
    line,
    markdown,
)
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


def test_a_one_seed_horizon_borrows_the_others_noise():
    rng = np.random.default_rng(0)
    x = np.arange(-9.0, -3.0, 0.5)

    def grid(steps: int, seeds: int, optimum: float) -> HorizonGrid:
        losses = 3 + 0.05 * (x - optimum) ** 2 + 0.003 * rng.standard_normal((seeds, len(x)))
        return HorizonGrid({}, steps, steps * 32, optimum, "ok", None, x, losses)

    grids = [grid(10, 3, -6.0), grid(30, 3, -6.4), grid(90, 1, -6.8)]
    fitted = fit_horizon(grids, 1.25, 0.05, 200, np.random.default_rng(1))
    assert fitted.gamma == pytest.approx(0.8 / math.log2(9))
    lo, hi = fitted.ci95
    assert lo < fitted.gamma < hi and fitted.n_located > 150
    ones = [grid(10, 1, -6.0), grid(30, 1, -6.4), grid(90, 1, -6.8)]
    alone = fit_horizon(ones, 1.25, 0.05, 50, np.random.default_rng(1))
    assert alone.ci95 is None and alone.cov is None


def test_holdout_table_scores_both_rules_at_a_longer_horizon(fit, tmp_path: Path):
    held_out = load_fit(write_sweep(tmp_path, horizons=(270,), seeds=(0, 1, 2)))
    table = holdout_table(fit, held_out).set_index("parameterization")
    assert set(table.index) == {"sp", "supar"}
    row = table.loc["supar"]
    assert row["measured_log2"] == pytest.approx(optimum_log2_lr(270), abs=0.1)
    assert row["fitted_error"] == pytest.approx(0, abs=0.15)
    completedp = optimum_log2_lr(90) - 0.5 * math.log2(3)
    assert row["completedp_error"] == pytest.approx(completedp - optimum_log2_lr(270), abs=0.15)
    assert "| 1 | 0.25 [" in markdown(table.reset_index())


def test_fit_cli_prints_gamma_per_group(tmp_path: Path, capsys):
    from hptransfer.cli.main import main

    sweep = write_sweep(tmp_path, horizons=HORIZONS, seeds=(0, 1, 2), fit=False)
    assert main(["fit", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "log2 η*(D) = a − γ·log2 D" in out
    assert re.search(r"supar +16 +1\.0 +0\.2[3-7]\d* +\[0\.\d+, 0\.\d+\]", out), out
    assert re.search(r"10: 2\^-6\.0\d, 30: 2\^-6\.4\d, 90: 2\^-6\.[78]\d", out), out
