"""The joint optimum of several base HPs searched together (η, σ, α_out, ...), in log2 space.

Input: one row per run with the HP values, the seed and the loss. The best point is the
arg-min of the points' mean losses over their seeds. A full quadratic
``loss ≈ c_seed + bᵀz + ½ zᵀHz`` in ``z = log2(HP) − log2(HP_best)``, with one constant per
seed (a seed shifts the whole surface, so points trained with different seeds, e.g. a
one-seed grid and a three-seed η slice, compare fairly), is fitted by least squares to the
runs at the points within ``window`` octaves of the best in every HP (the 3×3×…
neighbourhood of a grid), or at the ``2·p`` nearest points when that holds fewer (scattered
Optuna points; ``p`` is the quadratic's number of coefficients). Its
minimum over the searched box is the optimum: the cross terms of ``H`` follow a tilted
(correlated) basin instead of fitting each HP on its own slice.

Flags, per HP:

- ``ok``: ``H`` is positive definite and the minimum lies inside the searched range.
- ``edge``: the minimum lies on the edge of the searched range in this HP (reported there,
  never extrapolated): widen the range.
- ``flat``: the basin is not located: ``H`` is not positive definite, or the minimum lies more
  than ``window`` octaves from the best point (the local fit does not hold there), or more
  than 2.5% of the bootstrap refits locate no minimum, or the 95% interval is wider than the
  searched range. The best point is reported.
- ``few_points``: fewer points than ``needed_points(d)``; the best point is reported.

The 95% interval comes from a wild bootstrap of the fit's residuals (each residual kept or
flipped in sign at random, then refitted): it needs no repeated seeds, so a one-seed grid has
intervals too, and it is cut to the searched range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hptransfer.quadratic import n_coefficients, needed_points

TAIL = 0.025  # each side of the 95% interval


@dataclass(frozen=True)
class JointOptimum:
    """The joint optimum: per HP its log2, flag and 95% interval (log2; None if unknown)."""

    hps: tuple[str, ...]
    log2: dict[str, float]
    flags: dict[str, str]
    ci95: dict[str, tuple[float, float] | None]
    loss: float
    n_points: int
    n_fitted: int

    def value(self, hp: str) -> float:
        return float(2.0 ** self.log2[hp])


@dataclass(frozen=True)
class _Runs:
    """Runs at ``x`` (rows: log2 of each HP) with losses ``y`` and seed codes ``seed``."""

    x: np.ndarray
    y: np.ndarray
    seed: np.ndarray

    def where(self, keep: np.ndarray, origin: np.ndarray) -> _Runs:
        """The runs ``keep``, centred on ``origin``, seeds renumbered among them."""
        return _Runs(self.x[keep] - origin, self.y[keep], pd.factorize(self.seed[keep])[0])


def _runs(runs: pd.DataFrame, hps: Sequence[str], metric: str) -> _Runs:
    runs = runs[(runs[list(hps)] > 0).all(axis=1) & np.isfinite(runs[metric])]
    seed = pd.factorize(runs["seed"])[0] if "seed" in runs else np.zeros(len(runs), int)
    return _Runs(np.log2(runs[list(hps)].to_numpy(float)), runs[metric].to_numpy(float), seed)


def locate_joint(
    runs: pd.DataFrame,
    hps: Sequence[str],
    metric: str = "val_loss",
    *,
    window: float = 1.0,
    n_boot: int = 1000,
    rng: np.random.Generator | None = None,
) -> JointOptimum:
    """The joint optimum of ``hps`` over ``runs`` (columns: the HPs, ``seed``, ``metric``)."""
    hps = tuple(hps)
    rng = rng or np.random.default_rng(0)
    data = _runs(runs, hps, metric)
    points, which = np.unique(data.x, axis=0, return_inverse=True)
    which = which.ravel()
    means = np.bincount(which, data.y) / np.bincount(which)
    best = int(np.argmin(means))
    lo, hi = points.min(axis=0), points.max(axis=0)
    if len(points) < needed_points(len(hps)):
        return _at_point(hps, points[best], float(means[best]), len(points), "few_points")
    near = _neighbourhood(points, best, window, n_coefficients(len(hps)))[which]
    fitted = data.where(near, points[best])
    box = (lo - points[best], hi - points[best])
    n_fitted = len(np.unique(fitted.x, axis=0))
    coef = _fit_quadratic(fitted)
    vertex, flat = _box_minimum(coef, box, window)
    if flat:
        return _at_point(hps, points[best], float(means[best]), len(points), "flat", n_fitted)
    x_opt = points[best] + vertex
    replicates = points[best] + _wild_bootstrap(fitted, coef, box, window, n_boot, rng)
    flags, ci95 = _flags_and_intervals(x_opt, replicates, lo, hi)
    return JointOptimum(
        hps=hps,
        log2={hp: float(v) for hp, v in zip(hps, x_opt, strict=True)},
        flags=dict(zip(hps, flags, strict=True)),
        ci95=dict(zip(hps, ci95, strict=True)),
        loss=_loss_at(coef, vertex, n_seeds=int(fitted.seed.max()) + 1),
        n_points=len(points),
        n_fitted=n_fitted,
    )


def _at_point(
    hps: tuple[str, ...], x: np.ndarray, loss: float, n_points: int, flag: str, n_fitted: int = 0
) -> JointOptimum:
    return JointOptimum(
        hps=hps,
        log2={hp: float(v) for hp, v in zip(hps, x, strict=True)},
        flags=dict.fromkeys(hps, flag),
        ci95=dict.fromkeys(hps),
        loss=loss,
        n_points=n_points,
        n_fitted=n_fitted,
    )


def _neighbourhood(x: np.ndarray, best: int, window: float, p: int) -> np.ndarray:
    """Points within ``window`` octaves of the best in every HP; at least the 2p nearest."""
    offset = np.abs(x - x[best])
    near = offset.max(axis=1) <= window + 1e-9
    if near.sum() < 2 * p:
        nearest = np.argsort(np.linalg.norm(offset, axis=1), kind="stable")[: 2 * p]
        near[nearest] = True
    return near


def _features(z: np.ndarray) -> np.ndarray:
    """Columns z_i, then ½z_i² / z_i·z_j (i <= j) of the quadratic (no constant)."""
    d = z.shape[1]
    cols = [z[:, i] for i in range(d)]
    for i in range(d):
        for j in range(i, d):
            cols.append(0.5 * z[:, i] ** 2 if i == j else z[:, i] * z[:, j])
    return np.stack(cols, axis=1)


def _design(runs: _Runs) -> np.ndarray:
    """One constant per seed (seeds shift the whole surface), then the quadratic's terms:
    a seed seen at few points does not bias the basin's shape."""
    n_seeds = int(runs.seed.max()) + 1
    return np.column_stack([np.eye(n_seeds)[runs.seed], _features(runs.x)])


def _fit_quadratic(runs: _Runs) -> np.ndarray:
    """Least-squares coefficients: the seed constants, then the order of :func:`_features`."""
    coef, *_ = np.linalg.lstsq(_design(runs), runs.y, rcond=None)
    return coef


def _loss_at(coef: np.ndarray, z: np.ndarray, n_seeds: int) -> float:
    """The fitted loss at ``z``, averaged over the seeds' constants."""
    return float(coef[:n_seeds].mean() + _features(z[None, :])[0] @ coef[n_seeds:])


def _gradient_hessian(coef: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """The quadratic's gradient at 0 and Hessian from the coefficients (seed constants first)."""
    terms = coef[len(coef) - d - d * (d + 1) // 2 :]
    b, hessian = terms[:d], np.zeros((d, d))
    k = d
    for i in range(d):
        for j in range(i, d):
            hessian[i, j] = hessian[j, i] = terms[k]
            k += 1
    return b, hessian


def _box_minimum(
    coef: np.ndarray, box: tuple[np.ndarray, np.ndarray], window: float
) -> tuple[np.ndarray, bool]:
    """The quadratic's minimum over the box [lo, hi] (coordinate descent, exact per axis),
    and whether the basin is flat (H not positive definite, or the minimum > window away)."""
    lo, hi = box
    d = len(lo)
    b, hessian = _gradient_hessian(coef, d)
    if np.linalg.eigvalsh(hessian).min() <= 0:
        return np.zeros(d), True
    z = np.linalg.solve(hessian, -b)
    if np.all((lo <= z) & (z <= hi)):
        return z, bool(np.abs(z).max() > window + 1e-9)
    z = np.clip(z, lo, hi)
    for _ in range(200):
        before = z.copy()
        for i in range(d):
            rest = b[i] + hessian[i] @ z - hessian[i, i] * z[i]
            z[i] = np.clip(-rest / hessian[i, i], lo[i], hi[i])
        if np.abs(z - before).max() < 1e-10:
            break
    return z, bool(np.abs(z).max() > window + 1e-9)


def _wild_bootstrap(
    runs: _Runs,
    coef: np.ndarray,
    box: tuple[np.ndarray, np.ndarray],
    window: float,
    n_boot: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Optima (offsets from the best point) of ``n_boot`` refits with sign-flipped residuals;
    NaN rows where a refit locates no minimum."""
    design = _design(runs)
    fitted = design @ coef
    # Residuals of a fit with p coefficients on n runs are shrunk by about (n - p) / n.
    n, p = len(runs.y), len(coef)
    residual = (runs.y - fitted) * (np.sqrt(n / (n - p)) if n > p else 1.0)
    flips = rng.choice((-1.0, 1.0), size=(n_boot, n))
    refits, *_ = np.linalg.lstsq(design, (fitted + flips * residual).T, rcond=None)
    out = np.full((n_boot, runs.x.shape[1]), np.nan)
    for r in range(n_boot):
        vertex, flat = _box_minimum(refits[:, r], box, window)
        if not flat:
            out[r] = vertex
    return out


def _flags_and_intervals(
    x_opt: np.ndarray, replicates: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[list[str], list[tuple[float, float] | None]]:
    """Per HP: its flag and its bootstrap percentile interval, cut to the searched range."""
    located = replicates[~np.isnan(replicates).any(axis=1)]
    unlocated = 1 - len(located) / len(replicates)
    flags: list[str] = []
    ci95: list[tuple[float, float] | None] = []
    for i in range(len(x_opt)):
        if len(located):
            q_lo, q_hi = np.percentile(located[:, i], [100 * TAIL, 100 * (1 - TAIL)])
            interval = (max(float(q_lo), float(lo[i])), min(float(q_hi), float(hi[i])))
        else:
            interval = None
        on_edge = np.isclose(x_opt[i], lo[i]) or np.isclose(x_opt[i], hi[i])
        too_wide = interval is not None and interval[1] - interval[0] >= hi[i] - lo[i]
        if on_edge:
            flags.append("edge")
        elif unlocated > TAIL or interval is None or too_wide:
            flags.append("flat")
        else:
            flags.append("ok")
        ci95.append(interval)
    return flags, ci95
