"""The 1-D optimum locator: parabola in log2(HP), flags, seed bootstrap interval."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hptransfer.analysis.optimum import estimate, locate, small_sample_factor

GRID = np.arange(-10.0, -2.9, 0.5)


def losses(true: float, seeds: int = 3, noise: float = 0.004, curvature: float = 0.05, seed=0):
    rng = np.random.default_rng(seed)
    shift = rng.normal(0, noise, (seeds, 1))
    return 3 + curvature * (GRID - true) ** 2 + shift + rng.normal(0, noise, (seeds, len(GRID)))


@settings(max_examples=30, deadline=None)
@given(true=st.floats(-9.0, -4.0), seed=st.integers(0, 2**16))
def test_recovers_interior_optimum_within_grid_spacing(true: float, seed: int) -> None:
    opt = estimate(GRID, losses(true, seed=seed), 1.0, 200, np.random.default_rng(seed))
    assert opt.flag == "ok"
    assert abs(opt.log2 - true) < 0.5
    assert opt.curvature == pytest.approx(0.05, rel=0.5)


def test_interval_covers_truth_about_95_percent() -> None:
    rng = np.random.default_rng(1)
    trues = rng.uniform(-8, -5, 60)
    hits = [
        lo <= t <= hi
        for i, t in enumerate(trues)
        for lo, hi in [estimate(GRID, losses(t, seed=i), 1.0, 300, rng).ci95]
    ]
    assert np.mean(hits) >= 0.85


def test_exact_parabola_is_exact() -> None:
    y = 2 + 0.1 * (GRID + 6.3) ** 2
    opt = locate(GRID, y, np.ones_like(GRID), window=1.0)
    assert (opt.flag, opt.n_fitted) == ("ok", 5)
    assert opt.log2 == pytest.approx(-6.3)
    assert opt.loss == pytest.approx(2.0)
    assert opt.curvature == pytest.approx(0.1)


@pytest.mark.parametrize(("true", "edge"), [(-1.0, GRID[-1]), (-12.0, GRID[0])])
def test_optimum_beyond_grid_is_flagged_edge_not_extrapolated(true: float, edge: float) -> None:
    opt = estimate(GRID, losses(true), 1.0, 300, np.random.default_rng(0))
    assert (opt.flag, opt.log2) == ("edge", edge)
    assert opt.ci95 is not None and opt.ci95[0] >= GRID[0] and opt.ci95[1] <= GRID[-1]


def test_flat_basin_is_flagged_and_its_interval_cut_to_the_grid() -> None:
    """Two seeds widen the bootstrap interval ~9×: a flat basin's would reach far past the
    grid (to 2^34 in a real init-std study) and blow up the plots' axes."""
    for seed in range(5):
        noisy = losses(-6.0, curvature=0.0, seeds=2, seed=seed)
        opt = estimate(GRID, noisy, 1.0, 300, np.random.default_rng(seed))
        assert opt.flag == "flat"
        assert opt.ci95 is not None and GRID[0] <= opt.ci95[0] <= opt.ci95[1] <= GRID[-1]


def test_single_seed_has_no_interval_and_few_points_are_flagged() -> None:
    one = estimate(GRID, losses(-6.5, seeds=1), 1.0, 300, np.random.default_rng(0))
    assert one.flag == "ok" and one.ci95 is None
    two = estimate(GRID[:2], losses(-6.5)[:, :2], 1.0, 300, np.random.default_rng(0))
    assert two.flag == "few_points"


def test_missing_points_per_seed_are_tolerated() -> None:
    y = losses(-6.5, seeds=4)
    y[0, 5] = y[1, 7] = np.nan  # a seed without a usable trial at a grid point
    opt = estimate(GRID, y, 1.0, 300, np.random.default_rng(0))
    assert opt.flag == "ok" and abs(opt.log2 + 6.5) < 0.5


def test_small_sample_factor_shrinks_to_one() -> None:
    assert small_sample_factor(2) > small_sample_factor(3) > small_sample_factor(10) > 1
    assert small_sample_factor(1000) == pytest.approx(1.0, abs=1e-3)
