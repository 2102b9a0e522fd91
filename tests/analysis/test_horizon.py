"""The optimum's drift with the horizon: log2 η*(D) = a − γ·log2 D fitted per group."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from hptransfer.analysis.fit import load_fit
from hptransfer.analysis.horizon import (
    BudgetGrid,
    BudgetLine,
    fit_line,
    holdout_table,
    line,
    markdown,
)
from tests.transfer.fitted_sweep import (
    BATCH_STEPS,
    BETA,
    GAMMA,
    TOKENS_PER_STEP,
    optimum_log2_lr,
    write_sweep,
)

HORIZONS = (10, 30, 90)
BATCHES = (4, 2, 8)  # the first is the base; 16 steps × 4 rows each


@pytest.fixture(scope="module")
def fit(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("results")
    return load_fit(write_sweep(root, horizons=HORIZONS, seeds=(0, 1, 2)))


def test_line_recovers_an_exact_power_law():
    x = np.log2([1e3, 1e4, 1e5])
    intercept, slope = line(x, 2.0 - 0.3 * x)
    assert (intercept, slope) == pytest.approx((2.0, -0.3))


def test_gamma_per_group_with_an_interval_covering_the_truth(fit):
    assert {row["parameterization"] for row in fit.budget} == {"sp", "supar"}
    for row in fit.budget:
        line_fit = BudgetLine.from_json(row)
        assert row["axis"] == "tokens" and row["gamma"] == line_fit.exponent
        assert line_fit.exponent == pytest.approx(GAMMA, abs=0.05)
        lo, hi = line_fit.exponent_ci95
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

    def grid(steps: int, seeds: int, optimum: float) -> BudgetGrid:
        losses = 3 + 0.05 * (x - optimum) ** 2 + 0.003 * rng.standard_normal((seeds, len(x)))
        return BudgetGrid({}, steps, steps * 32, 4, optimum, "ok", None, x, losses)

    grids = [grid(10, 3, -6.0), grid(30, 3, -6.4), grid(90, 1, -6.8)]
    fitted = fit_line(grids, "tokens", 1.25, 0.05, 200, np.random.default_rng(1))
    assert fitted.exponent == pytest.approx(0.8 / math.log2(9))
    lo, hi = fitted.exponent_ci95
    assert lo < fitted.exponent < hi and fitted.n_located > 150
    ones = [grid(10, 1, -6.0), grid(30, 1, -6.4), grid(90, 1, -6.8)]
    alone = fit_line(ones, "tokens", 1.25, 0.05, 50, np.random.default_rng(1))
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


@pytest.mark.parametrize(
    ("budgets", "patterns"),
    [
        (
            {"horizons": HORIZONS},
            (
                r"over the horizon: log2 η\*\(D\) = a − γ·log2 D",
                r"supar +16 +1\.0 +0\.2[3-7]\d* +\[0\.\d+, 0\.\d+\]",
                r"10: 2\^-6\.0\d, 30: 2\^-6\.4\d, 90: 2\^-6\.[78]\d",
            ),
        ),
        (
            {"batches": (4, 2, 8)},
            (
                r"over the batch size at fixed tokens: log2 η\*\(B\) = a \+ β·log2 B",
                r"supar +16 +1\.0 +0\.[34]\d* +\[0\.\d+, 0\.\d+\]",
                r"2: 2\^-6\.[56]\d, 4: 2\^-6\.[12]\d, 8: 2\^-5\.[78]\d",
            ),
        ),
    ],
)
def test_fit_cli_prints_the_exponent_per_group(tmp_path: Path, capsys, budgets, patterns):
    from hptransfer.cli.main import main

    sweep = write_sweep(tmp_path, seeds=(0, 1, 2), fit=False, **budgets)
    assert main(["fit", str(sweep)]) == 0
    out = capsys.readouterr().out
    for pattern in patterns:
        assert re.search(pattern, out), (pattern, out)


@pytest.fixture(scope="module")
def batch_fit(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("results")
    return load_fit(write_sweep(root, batches=BATCHES, seeds=(0, 1, 2)))


def optimum_at_batch(batch: int) -> float:
    return optimum_log2_lr(BATCH_STEPS * 4 // batch, batch)


def test_beta_per_group_at_fixed_tokens_with_an_interval_covering_the_truth(batch_fit):
    assert batch_fit.horizon == {"steps": BATCH_STEPS, "tokens": BATCH_STEPS * 32, "batch": 4}
    assert math.log2(batch_fit.base_hps["supar"]["lr"].value) == pytest.approx(
        optimum_at_batch(4), abs=0.1
    )
    assert {row["parameterization"] for row in batch_fit.budget} == {"sp", "supar"}
    for row in batch_fit.budget:
        fitted = BudgetLine.from_json(row)
        assert (row["axis"], row["beta"]) == ("batch", fitted.exponent)
        assert fitted.exponent == pytest.approx(BETA, abs=0.05)
        lo, hi = fitted.exponent_ci95
        assert lo <= BETA <= hi and hi - lo < 0.5
        assert [(h["batch"], h["steps"]) for h in row["horizons"]] == [(2, 32), (4, 16), (8, 8)]
        assert {h["tokens"] for h in row["horizons"]} == {BATCH_STEPS * 32}
        assert fitted.log2_at(16) == pytest.approx(optimum_at_batch(16), abs=0.15)
        low, high = fitted.interval(16)
        assert low < fitted.log2_at(16) < high


def test_budgets_are_listed_along_the_line_when_whole_steps_round_the_tokens(tmp_path: Path):
    fit = load_fit(write_sweep(tmp_path, batches=(4, 6, 2, 8), seeds=(0, 1, 2)))
    (row, *_) = fit.budget
    budgets = [(h["batch"], h["steps"], h["tokens"]) for h in row["horizons"]]
    assert budgets == [(2, 32, 512), (4, 16, 512), (6, 10, 480), (8, 8, 512)]


def test_a_batch_line_survives_json_and_extrapolates_in_either_sign():
    fitted = BudgetLine("batch", 0.5, (0.3, 0.7), -9.0, ((0.1, -0.02), (-0.02, 0.01)), 0.1, 900)
    again = BudgetLine.from_json(fitted.to_json())
    assert again == fitted and again.log2_at(16) == pytest.approx(-7.0)
    horizon = BudgetLine("tokens", -0.25, (-0.4, -0.1), 1.0, ((0.1, -0.02), (-0.02, 0.01)), 0, 9)
    doc = horizon.to_json()
    assert (doc["gamma"], doc["ci95"], doc["cov"][0][1]) == (0.25, [0.1, 0.4], 0.02)
    assert BudgetLine.from_json(doc) == horizon
    assert BudgetLine.from_json({k: v for k, v in doc.items() if k != "axis"}) == horizon


def test_holdout_table_scores_both_rules_at_a_larger_batch(batch_fit, tmp_path: Path):
    held_out = load_fit(write_sweep(tmp_path, batches=(16,), seeds=(0, 1, 2)))
    assert held_out.horizon == {"steps": 4, "tokens": BATCH_STEPS * 32, "batch": 16}
    table = holdout_table(batch_fit, held_out).set_index("parameterization")
    row = table.loc["supar"]
    assert (row["axis"], row["held_out"], row["budgets"]) == ("batch", 16, [2, 4, 8])
    assert row["measured_log2"] == pytest.approx(optimum_at_batch(16), abs=0.1)
    assert row["fitted_error"] == pytest.approx(0, abs=0.15)
    completedp = optimum_at_batch(8) + 0.5  # from batch 8: η × √(16/8), the same tokens
    assert row["completedp_log2"] == pytest.approx(completedp, abs=0.1)
    assert row["completedp_error"] == pytest.approx(0.5 - BETA, abs=0.15)
    assert "| density | β [95% CI] |" in markdown(table.reset_index())


def test_holdout_command_writes_the_table_and_refuses_bad_folders_in_one_line(
    tmp_path: Path, capsys
):
    from hptransfer.cli.holdout import main

    study = write_sweep(tmp_path / "study", horizons=HORIZONS, seeds=(0, 1, 2))
    held = write_sweep(tmp_path / "held", horizons=(270,), seeds=(0, 1))
    assert main([str(study), str(held)]) == 0
    assert "| density | γ [95% CI] |" in capsys.readouterr().out
    assert (study / "holdout.json").is_file()
    with pytest.raises(SystemExit) as stop:
        main([str(study), str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "nowhere not found" in err
