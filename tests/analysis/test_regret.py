"""Transfer regret from a target's LR grid: values, flags, storage and figure."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hptransfer.analysis.regret import (
    OFFSETS,
    read_regret,
    regret_summary,
    regret_table,
    write_regret,
)
from hptransfer.analysis.tuning_plots import plot_regret

LR = 2.0**-7


def grid(
    best_offset: dict[str, float], width: int = 128, density: float = 0.125, steps: int = 150
) -> pd.DataFrame:
    """Runs at LR·2^k (k in OFFSETS), 3 seeds; loss 2 + 0.1·(k − best)² + 0.01·seed."""
    rows = [
        {
            "width": width, "density": density, "depth": 2, "parameterization": param,
            "max_steps": steps, "tokens": steps * 1024,
            "seed": seed, "lr": LR * 2.0**k, "status": "completed", "diverged": False,
            "val_loss": 2 + 0.1 * (k - best) ** 2 + 0.01 * seed,
        }
        for param, best in best_offset.items()
        for k in OFFSETS
        for seed in range(3)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_regret_is_the_transferred_loss_over_the_best_of_the_grid():
    table = regret_table(grid({"supar": 0.0, "sp": 0.5}), LR).set_index("parameterization")
    assert table.loc["supar", "regret_pct"] == 0
    assert table.loc["supar", "flag"] == "ok" and table.loc["supar", "seeds"] == 3
    tuned = 2 + 0.01  # mean over seeds 0, 1, 2 of 0.01·seed
    assert table.loc["sp", "tuned_loss"] == pytest.approx(tuned)
    assert table.loc["sp", "transferred_loss"] == pytest.approx(tuned + 0.025)
    assert table.loc["sp", "regret_pct"] == pytest.approx(100 * 0.025 / tuned)
    assert table.loc["sp", "tuned_lr"] == pytest.approx(LR * 2**0.5)


def test_a_best_at_the_grid_end_is_flagged_edge_and_a_diverged_transfer_diverged():
    runs = grid({"supar": 2.0, "sp": 0.0})
    at_lr = runs["parameterization"].eq("sp") & np.isclose(runs["lr"], LR)
    runs.loc[at_lr & runs["seed"].eq(1), "diverged"] = True  # one seed of three
    table = regret_table(runs, LR).set_index("parameterization")
    assert table.loc["supar", "flag"] == "edge" and table.loc["supar", "regret_pct"] > 0
    assert table.loc["sp", "flag"] == "diverged" and math.isnan(table.loc["sp", "regret_pct"])
    missing = regret_table(runs[~np.isclose(runs["lr"], LR)], LR).set_index("parameterization")
    assert missing.loc["supar", "flag"] == "missing"
    partial = regret_table(runs[runs["lr"] <= LR], LR).set_index("parameterization")
    assert partial.loc["supar", "flag"] == "partial"
    last_supar = runs.index[runs["parameterization"].eq("supar")][-1]
    one_seed_short = runs.drop(index=last_supar)  # supar's last point loses a seed
    assert (
        regret_table(one_seed_short, LR).set_index("parameterization").loc["supar", "flag"]
        == "partial"
    )


def test_a_run_that_diverged_early_counts_at_its_targets_budget():
    runs = grid({"supar": 0.0, "sp": 0.0}).assign(steps=150)
    top = runs["parameterization"].eq("sp") & np.isclose(runs["lr"], LR * 2)
    runs.loc[top, ["diverged", "steps", "val_loss"]] = [True, 20, math.nan]
    runs.loc[top, "tokens"] = 20 * 1024  # what it saw before it stopped
    table = regret_table(runs, LR).set_index("parameterization")
    assert len(table) == 2 and (table["tokens"] == 150 * 1024).all()
    assert table.loc["sp", "flag"] == "partial" and table.loc["sp", "regret_pct"] == 0


def test_regret_has_a_paired_interval_saying_within_noise_when_it_covers_zero():
    table = regret_table(grid({"supar": 0.0, "sp": 0.5}), LR).set_index("parameterization")
    sp = table.loc["sp"]  # every seed differs by the same amount: a point interval
    assert sp["regret_ci95_lo"] == pytest.approx(sp["regret_pct"]) == sp["regret_ci95_hi"]
    assert math.isnan(table.loc["supar", "regret_ci95_lo"])  # the transferred η is the best
    noisy = grid({"sp": 0.5})
    noisy["val_loss"] += np.where(noisy["seed"] == 1, 0.05, 0.0) * np.isclose(noisy["lr"], LR)
    row = regret_table(noisy, LR).iloc[0]
    assert row["regret_ci95_lo"] < 0 < row["regret_ci95_hi"]
    assert regret_summary(regret_table(noisy, LR))["95% CI (paired)"][0].endswith("within noise")


def test_stored_regret_merges_by_target_and_is_drawn(tmp_path: Path):
    first = regret_table(grid({"supar": 0.0, "sp": 0.5}), LR)
    write_regret(first, tmp_path)
    wider = grid({"supar": 0.5, "sp": 1.0}, width=256)
    again = regret_table(pd.concat([grid({"supar": 0.5, "sp": 0.5}), wider]), LR)
    write_regret(again, tmp_path)
    stored = read_regret(tmp_path)
    assert len(stored) == 4  # two targets × two parameterizations, the first replaced
    assert stored.set_index(["width", "parameterization"]).loc[(128, "supar"), "regret_pct"] > 0
    assert list(regret_summary(stored).columns)[:3] == [
        "target (width × density, depth)", "parameterization", "seeds",
    ]  # fmt: skip
    runs = pd.concat([grid({"supar": 0.5, "sp": 0.5}), wider])
    figure = plot_regret(stored, runs, "val_loss")
    assert len(figure.axes) == 3
    assert read_regret(tmp_path / "elsewhere") is None


def test_budgets_and_rules_of_one_shape_are_stored_apart(tmp_path: Path):
    """The horizon study's two --regret runs (one per budget rule) at one target shape, and
    another budget of that shape: three targets, none overwriting another."""
    completedp = regret_table(grid({"supar": 0.0}, steps=600), LR, budget_rule="completedp")
    fitted_lr = LR * 2**0.5
    fitted = regret_table(
        grid({"supar": 0.5}, steps=600).assign(lr=lambda f: f["lr"] * 2**0.5),
        fitted_lr,
        budget_rule="fitted",
    )
    short = regret_table(grid({"supar": 1.0}), LR)
    for table in (completedp, fitted, short, completedp):  # the last one: measured again
        write_regret(table, tmp_path)
    stored = read_regret(tmp_path).set_index(["max_steps", "budget_rule"])
    assert len(stored) == 3
    assert stored.loc[(600, "completedp"), "regret_pct"] == 0.0
    assert stored.loc[(600, "fitted"), "transferred_lr"] == fitted_lr
    assert stored.loc[(150, ""), "regret_pct"] > 0
    assert sorted(regret_summary(stored.reset_index())["budget"]) == [
        "150 steps", "600 steps, completedp", "600 steps, fitted",
    ]  # fmt: skip
    # Runs at one shape and budget serve every rule's grid: the fitted panel draws those of
    # them on its own grid (η / its transferred η in 2^OFFSETS).
    runs = pd.concat([grid({"supar": 0.0}, steps=600), grid({"supar": 1.0})])
    figure = plot_regret(stored.reset_index(), runs, "val_loss")
    assert len(figure.axes) == 4
    points = [len(ax.get_lines()[0].get_xdata()) for ax in figure.axes[1:]]
    assert sorted(points) == [4, 5, 5]


def test_a_table_without_budget_columns_reads_and_is_replaced_by_a_new_measurement(
    tmp_path: Path,
):
    legacy = regret_table(grid({"supar": 0.0, "sp": 0.5}), LR).drop(
        columns=["max_steps", "tokens", "budget_rule"]
    )
    legacy.to_parquet(tmp_path / "regret.parquet")
    stored = read_regret(tmp_path)
    assert stored["max_steps"].isna().all() and stored["budget_rule"].eq("").all()
    assert regret_summary(stored)["budget"].eq("-").all()
    write_regret(regret_table(grid({"supar": 1.0}), LR), tmp_path)
    stored = read_regret(tmp_path).set_index("parameterization")
    assert stored.loc["supar", "max_steps"] == 150  # the legacy supar row was replaced
    assert pd.isna(stored.loc["sp", "max_steps"])  # the legacy sp row was kept
