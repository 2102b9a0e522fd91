"""The joint optimum of several HPs on synthetic surfaces with known optima."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from hptransfer.analysis.joint import locate_joint
from hptransfer.quadratic import needed_points

HPS = ("lr", "init_std", "alpha_out")


def surface(x: np.ndarray, optimum: np.ndarray, hessian: np.ndarray) -> np.ndarray:
    """2 + ½(x − x*)ᵀH(x − x*) at rows ``x`` of log2 HP values."""
    dx = x - optimum
    return 2.0 + 0.5 * np.einsum("ni,ij,nj->n", dx, hessian, dx)


def grid_runs(
    axes: list[np.ndarray], optimum, hessian, noise: float, seeds: int = 1, rng_seed: int = 0
) -> pd.DataFrame:
    """One row per grid point and seed: HP values 2^x, val_loss = surface + noise."""
    rng = np.random.default_rng(rng_seed)
    x = np.array(list(itertools.product(*axes)), dtype=float)
    rows = []
    for seed in range(seeds):
        loss = surface(x, np.asarray(optimum), np.asarray(hessian))
        loss = loss + noise * rng.standard_normal(len(x))
        frame = pd.DataFrame(2.0**x, columns=list(HPS[: x.shape[1]]))
        rows.append(frame.assign(seed=seed, val_loss=loss))
    return pd.concat(rows, ignore_index=True)


def octaves(lo: float, hi: float, step: float = 1.0) -> np.ndarray:
    return np.arange(lo, hi + 1e-9, step)


def test_two_hps_off_grid_optimum_is_located_with_an_interval_around_it():
    truth = np.array([-7.3, -4.6])
    runs = grid_runs([octaves(-10, -4), octaves(-7, -2)], truth, np.diag([0.06, 0.04]), 0.002)
    opt = locate_joint(runs, HPS[:2], rng=np.random.default_rng(1))
    assert opt.flags == {"lr": "ok", "init_std": "ok"}
    for hp, true in zip(HPS[:2], truth, strict=True):
        assert abs(opt.log2[hp] - true) < 0.15
        lo, hi = opt.ci95[hp]
        assert lo <= true <= hi
        assert hi - lo < 1.0


def test_tilted_basin_is_followed_where_one_hp_slices_miss_it():
    # lr and init_std trade off (correlation -0.8): the slice through the best grid point
    # of either HP alone sits off the true joint optimum.
    truth = np.array([-7.4, -3.6, 0.7])
    hessian = np.array([[0.10, -0.08, 0.0], [-0.08, 0.10, 0.02], [0.0, 0.02, 0.05]])
    axes = [octaves(-10, -5), octaves(-6, -1), octaves(-2, 3)]
    runs = grid_runs(axes, truth, hessian, 0.001, seeds=2)
    means = runs.groupby(list(HPS))["val_loss"].mean().reset_index()
    best = means.loc[means["val_loss"].idxmin()]
    lr_slice = means[
        means["init_std"].eq(best["init_std"]) & means["alpha_out"].eq(best["alpha_out"])
    ]
    a, b, _ = np.polyfit(np.log2(lr_slice["lr"]), lr_slice["val_loss"], 2)
    assert abs(-b / (2 * a) - truth[0]) > 0.25  # the lr slice through the best point misses

    opt = locate_joint(runs, HPS, rng=np.random.default_rng(2))
    assert set(opt.flags.values()) == {"ok"}
    found = np.array([opt.log2[hp] for hp in HPS])
    assert np.abs(found - truth).max() < 0.05
    assert opt.loss == pytest.approx(2.0, abs=0.005)
    for hp, true in zip(HPS, truth, strict=True):
        lo, hi = opt.ci95[hp]
        assert lo <= true <= hi


def test_scattered_points_of_a_sampler_are_fitted_too():
    rng = np.random.default_rng(3)
    truth = np.array([-7.0, -4.0, 0.5])
    x = np.column_stack([rng.uniform(-10, -4, 60), rng.uniform(-7, -1, 60), rng.uniform(-2, 3, 60)])
    x[:15] = truth + rng.normal(0, 0.7, (15, 3))  # a sampler concentrates near the optimum
    loss = surface(x, truth, np.diag([0.08, 0.05, 0.04])) + 0.001 * rng.standard_normal(60)
    runs = pd.DataFrame(2.0**x, columns=list(HPS)).assign(seed=0, val_loss=loss)
    opt = locate_joint(runs, HPS, rng=rng)
    assert np.abs(np.array([opt.log2[hp] for hp in HPS]) - truth).max() < 0.3


def test_an_optimum_beyond_the_range_is_reported_at_its_edge_and_flagged():
    runs = grid_runs([octaves(-10, -6), octaves(-7, -2)], [-4.5, -4.6], np.diag([0.06, 0.04]), 0)
    opt = locate_joint(runs, HPS[:2])
    assert opt.flags["lr"] == "edge"
    assert opt.log2["lr"] == pytest.approx(-6)
    assert opt.flags["init_std"] == "ok"
    assert opt.log2["init_std"] == pytest.approx(-4.6, abs=0.05)


def test_a_saddle_is_flat_and_reports_the_best_point():
    runs = grid_runs([octaves(-10, -4), octaves(-7, -2)], [-7, -4], np.diag([0.06, -0.04]), 0)
    opt = locate_joint(runs, HPS[:2])
    assert set(opt.flags.values()) == {"flat"}
    best = runs.loc[runs["val_loss"].idxmin()]
    assert opt.value("lr") == pytest.approx(best["lr"])
    assert opt.ci95 == {"lr": None, "init_std": None}


def test_too_few_points_are_flagged_and_the_count_needed_is_known():
    assert needed_points(1) == 4
    assert needed_points(2) == 7
    assert needed_points(3) == 11
    runs = grid_runs([octaves(-8, -7), octaves(-5, -4)], [-7.5, -4.5], np.eye(2), 0)
    opt = locate_joint(runs, HPS[:2])
    assert set(opt.flags.values()) == {"few_points"}


def test_a_finer_slice_with_more_seeds_does_not_bias_the_basin():
    # A one-seed grid, then an lr slice at the best point with seeds whose losses sit
    # 0.05 higher: per-seed constants keep the slice from pulling the optimum away.
    truth = np.array([-7.3, -4.6])
    hessian = np.diag([0.06, 0.04])
    grid = grid_runs([octaves(-10, -4), octaves(-7, -2)], truth, hessian, 0)
    lr = octaves(-8, -6, 0.5)
    x = np.column_stack([lr, np.full_like(lr, -5.0)])
    slices = [
        pd.DataFrame(2.0**x, columns=list(HPS[:2])).assign(
            seed=seed, val_loss=surface(x, truth, hessian) + 0.05 * seed
        )
        for seed in (1, 2)
    ]
    opt = locate_joint(pd.concat([grid, *slices], ignore_index=True), HPS[:2])
    assert opt.log2["lr"] == pytest.approx(truth[0], abs=0.02)
    assert opt.log2["init_std"] == pytest.approx(truth[1], abs=0.02)


def test_seeds_outside_the_neighbourhood_do_not_pull_the_fitted_loss():
    truth = np.array([-7.3, -4.6])
    runs = grid_runs([octaves(-10, -4), octaves(-7, -2)], truth, np.diag([0.06, 0.04]), 0)
    far = runs[runs["lr"].eq(2.0**-10)].assign(seed=7, val_loss=lambda r: r["val_loss"] + 1)
    opt = locate_joint(pd.concat([far, runs], ignore_index=True), HPS[:2])  # seed 7 first
    assert opt.loss == pytest.approx(2.0, abs=1e-6)
