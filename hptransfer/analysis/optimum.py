"""Locating a loss minimum on a log2(HP) grid: stable points, a parabola around the arg-min,
bootstrapped over seeds.

Input is a matrix ``losses[seed, point]`` over the grid ``x = log2(HP)`` (increasing): NaN
where a seed has no trial at a point, +inf where its trial diverged.

**Stability.** A grid point is *unstable* when a seed diverged there, or when it lies beyond a *loss
jump*: walking outward from the arg-min of the seed means, the first step at which some seed's loss
rises by more than ``cliff`` times the best mean loss (default 5%) *and* by more than twice its
rises in the steps before and after it marks a cliff onto a plateau; that point and every point
beyond it on that side are unstable. A smooth basin's rises grow step by step, so however steep, it
has no jump. The 5% separates the committed studies' cliffs (a seed rising 10-20% in half an octave,
onto the ~2.55-nat plateau) from their smooth basins (at most 5% per half-octave step, mostly under
4%); it is a setting, meant for grids of half an octave or finer (``docs/fit.md#one-hp-on-a-grid``).
A point where only some seeds diverged or jumped is unstable too: averaging the survivors would move
the optimum. (Training stops a run only when its loss exceeds 3× its first loss; the cliff plateau
is far below that.)

**Centring.** Each seed's offset (its mean deviation from the seed mean over the stable
points every seed has) is removed before averaging, so a seed missing at a point does not
shift that point's mean; where all seeds are present the mean is unchanged.

**Optimum.** A parabola in ``x`` through the stable points within ``window`` octaves of the
arg-min, weighted by the seeds per point times LOESS's tricube kernel of the distance (with
the default 1.25-octave window on a half-octave grid, the neighbours weigh 0.82 and the
points an octave away 0.12); its vertex, kept between the arg-min's grid neighbours, is the
optimum. On a side whose neighbour is unstable the optimum does not pass the arg-min: the
basin beyond a cliff is not usable. The kernel keeps a basin's far sides from pulling the
vertex: on synthetic basins 3× steeper on one side the error stays under a quarter octave
(up to 0.45 octaves with 5 equally weighted points).

Flags:

- ``ok``: the vertex of a parabola with positive curvature, within the bracket.
- ``cliff``: the arg-min's neighbour is unstable and the loss still falls toward it (or the
  stable side has no curvature); the arg-min, the last stable point before the cliff, is
  reported.
- ``edge``: the arg-min is the first or last grid point; reported as is, never extrapolated
  (``hptransfer sweep --auto-extend`` grows the grid past it).
- ``flat``: the basin is not located: curvature <= 0, more than 2.5% of the bootstrap
  replicates locate no minimum, or the 95% interval is wider than the grid.
- ``few_points``: fewer than 3 stable grid points; the arg-min is reported.
- ``off_argmin``: located, but the 95% interval lies more than half a grid step from the
  arg-min grid point: the resampled seeds disagree with their own mean.

The 95% interval is the percentile interval of the seed bootstrap (each replicate located as
above), widened about the point estimate by ``sqrt(n/(n-1))·t(n-1)/z`` for ``n`` seeds
(Hesterberg's small-sample factor, applied to its width): plain percentile intervals
covered the true optimum about half the time with 2 seeds and 3/4 with 3; widened, 90-96%
with 2 to 8 seeds. It is cut to the stable part of the grid; ``ci95_cut`` says which ends
were cut (cut at both, it says only that the optimum is somewhere on the stable grid). Two
seeds give only 3 distinct resamples: use at least 3.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

TAIL = 0.025  # each side of the 95% interval
Z_975 = 1.96
CLIFF = 0.05  # a loss jump: a seed's loss rising by this fraction of the best mean in one step
# 97.5% quantiles of Student's t for 1..30 degrees of freedom; Z_975 beyond.
T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16,
    2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056,
    2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
LOCATED = ("ok", "cliff", "edge")  # flags of a bootstrap replicate that count as located


@dataclass(frozen=True)
class Optimum:
    """One located optimum, in log2 units of the HP.

    ``curvature`` is ``a`` in ``loss ≈ loss_min + a·(log2 HP − log2 HP*)²`` (loss per
    octave², NaN when no parabola was fitted); ``argmin`` the grid point of the lowest seed
    mean among the stable points; ``stable`` the first and last stable grid points;
    ``ci95`` is None with fewer than 2 seeds, ``ci95_cut`` one of none/low/high/both.
    """

    log2: float
    flag: str
    curvature: float
    loss: float
    n_fitted: int
    argmin: float
    stable: tuple[float, float]
    ci95: tuple[float, float] | None = None
    ci95_cut: str = "none"


@dataclass(frozen=True)
class Points:
    """The grid as one resample of seeds sees it: centred means, seeds per point, stability."""

    x: np.ndarray
    means: np.ndarray
    weights: np.ndarray
    stable: np.ndarray


# ---------------------------------------------------------------------------- seed means


def grid_points(x: np.ndarray, losses: np.ndarray, counts: np.ndarray, cliff: float) -> Points:
    """The points of ``losses[seed, point]`` with each seed row counted ``counts`` times.

    Points no counted seed has a trial at are dropped.
    """
    rows, c = losses[counts > 0], counts[counts > 0].astype(float)
    has_trial = (~np.isnan(rows)).any(axis=0)
    rows, x = rows[:, has_trial], x[has_trial]
    finite = np.isfinite(rows)
    weights = c @ finite
    raw = _mean(rows, c, finite, weights)
    candidates = ~np.isinf(rows).any(axis=0)  # each kept point has a finite loss then
    if not candidates.any():
        return Points(x, raw, weights, candidates)
    start = int(np.nanargmin(np.where(candidates, raw, np.nan)))
    stable = stable_points(rows, start, cliff * abs(raw[start]))
    complete = stable & finite.all(axis=0)
    if complete.any():
        # Offsets average to 0 over the seeds (weighted by c): complete points keep their mean.
        rows = rows - (rows[:, complete] - raw[complete]).mean(axis=1)[:, None]
    return Points(x, _mean(rows, c, finite, weights), weights, stable)


def _mean(rows: np.ndarray, c: np.ndarray, finite: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Means over the finite entries of each column, seed rows weighted by ``c``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (c @ np.where(finite, rows, 0.0)) / weights


def stable_points(rows: np.ndarray, start: int, jump: float) -> np.ndarray:
    """Points reached from ``start`` without a divergence or a loss jump.

    A jump is a seed's rise of more than ``jump`` in one step that is also more than twice
    its rises in the steps before and after (where it has them): a cliff onto a plateau.
    A smooth basin's rises grow step by step, so however steep it is, it has no jump.
    """
    stable = np.zeros(rows.shape[1], dtype=bool)
    for order in (np.arange(start, rows.shape[1]), np.arange(start, -1, -1)):
        walked = rows[:, order]
        rise = _rises(walked)
        with np.errstate(invalid="ignore"):
            lone = ~(rise <= 2 * np.fmax(np.roll(rise, 1, axis=1), 0))  # NaN before: no bound
            lone &= ~(rise <= 2 * np.fmax(np.roll(rise, -1, axis=1), 0))
            jumped = (rise > jump) & lone
        broken = np.isinf(walked).any(axis=0) | jumped.any(axis=0)
        reach = int(np.argmax(broken)) if broken.any() else len(order)
        stable[order[:reach]] = True
    return stable


def _rises(walked: np.ndarray) -> np.ndarray:
    """Each seed's rise into each point from the last point it has (NaN: none; first: NaN)."""
    rise = np.full(walked.shape, np.nan)
    last = walked[:, 0]
    for m in range(1, walked.shape[1]):
        with np.errstate(invalid="ignore"):  # inf - inf past a divergence
            rise[:, m] = walked[:, m] - last
        last = np.where(np.isnan(walked[:, m]), last, walked[:, m])
    return rise


# ---------------------------------------------------------------------------- one optimum


def locate(points: Points, window: float) -> Optimum:
    """The optimum of ``points`` (see the module docstring for the flags)."""
    x, y, stable = points.x, points.means, points.stable & np.isfinite(points.means)
    if not stable.any():  # every point has a diverged seed: the best of the survivors
        best = float(x[np.nanargmin(y)])
        return Optimum(best, "few_points", np.nan, float(np.nanmin(y)), 0, best, (best, best))
    i = int(np.nanargmin(np.where(stable, y, np.nan)))
    span = (float(x[stable][0]), float(x[stable][-1]))
    at_argmin = Optimum(float(x[i]), "few_points", np.nan, float(y[i]), 0, float(x[i]), span)
    if stable.sum() < 3:
        return at_argmin
    if i in (0, len(x) - 1):
        return replace(at_argmin, flag="edge")
    lo = x[i - 1] if stable[i - 1] else x[i]
    hi = x[i + 1] if stable[i + 1] else x[i]
    weights = points.weights * tricube(x - x[i], max(window, 1.5 * max(x[i] - lo, hi - x[i])))
    near = stable & (weights > 0)
    if near.sum() < 3:
        return replace(at_argmin, flag="cliff")
    a, b, c = parabola(x[near] - x[i], y[near], weights[near])
    fitted = replace(at_argmin, curvature=a, n_fitted=int(near.sum()))
    at_cliff = x[i] in (lo, hi)
    if a <= 0:
        return replace(fitted, flag="cliff" if at_cliff else "flat")
    vertex = x[i] - b / (2 * a)
    if (hi == x[i] < vertex) or (lo == x[i] > vertex):
        return replace(fitted, flag="cliff")
    clipped = float(np.clip(vertex, lo, hi))
    loss = a * (clipped - x[i]) ** 2 + b * (clipped - x[i]) + c
    return replace(fitted, log2=clipped, flag="ok", loss=float(loss))


def tricube(d: np.ndarray, bandwidth: float) -> np.ndarray:
    """LOESS's tricube weights ``(1 - |d/bandwidth|³)³``, 0 from ``bandwidth`` on."""
    return np.clip(1 - np.abs(d / bandwidth) ** 3, 0.0, None) ** 3


def parabola(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """Weighted least-squares ``(a, b, c)`` of ``y ≈ a·x² + b·x + c`` (weights on squares)."""
    design = np.stack([x * x, x, np.ones_like(x)], axis=1)
    weighted = design * w[:, None]
    a, b, c = np.linalg.solve(design.T @ weighted, weighted.T @ y)
    return float(a), float(b), float(c)


# ---------------------------------------------------------------------------- bootstrap


def bootstrap(
    x: np.ndarray,
    losses: np.ndarray,
    window: float,
    cliff: float,
    n_boot: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """log2 optima of ``n_boot`` resamples of the seeds (NaN where none was located)."""
    n_seeds = losses.shape[0]
    counts = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_boot)
    # Few seeds give few distinct resamples (10 for 3 seeds): locate each one once.
    distinct, which = np.unique(counts, axis=0, return_inverse=True)
    optima = np.full(len(distinct), np.nan)
    for r, count in enumerate(distinct):
        opt = locate(grid_points(x, losses, count, cliff), window)
        if opt.flag in LOCATED:
            optima[r] = opt.log2
    return optima[which.ravel()]


def estimate(
    x: np.ndarray,
    losses: np.ndarray,
    window: float,
    n_boot: int,
    rng: np.random.Generator,
    cliff: float = CLIFF,
) -> Optimum:
    """Point estimate and 95% bootstrap interval of the optimum of ``losses[seed, point]``."""
    point = locate(grid_points(x, losses, np.ones(losses.shape[0]), cliff), window)
    if losses.shape[0] < 2 or point.flag == "few_points":
        return point
    replicates = bootstrap(x, losses, window, cliff, n_boot, rng)
    located = replicates[~np.isnan(replicates)]
    if len(located) == 0:
        return replace(point, flag="flat")
    q_lo, q_hi = np.percentile(located, [100 * TAIL, 100 * (1 - TAIL)])
    widen = small_sample_factor(losses.shape[0])
    lo = point.log2 - widen * max(point.log2 - q_lo, 0.0)
    hi = point.log2 + widen * max(q_hi - point.log2, 0.0)
    ci95 = (max(lo, point.stable[0]), min(hi, point.stable[1]))
    cut = {(False, False): "none", (True, False): "low", (False, True): "high"}.get(
        (lo < point.stable[0], hi > point.stable[1]), "both"
    )
    flag = point.flag
    if 1 - len(located) / n_boot > TAIL or hi - lo > x[-1] - x[0]:
        flag = "flat"
    elif flag == "ok" and not overlaps(ci95, half_step_cell(x, point.argmin)):
        flag = "off_argmin"
    return replace(point, flag=flag, ci95=ci95, ci95_cut=cut)


def half_step_cell(x: np.ndarray, at: float) -> tuple[float, float]:
    """The grid point ``at`` ± half the step to each neighbour (where it has one)."""
    k = int(np.searchsorted(x, at))
    lo = (x[k - 1] + x[k]) / 2 if k > 0 else x[k]
    hi = (x[k] + x[k + 1]) / 2 if k + 1 < len(x) else x[k]
    return float(lo), float(hi)


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether closed intervals ``a`` and ``b`` share a point."""
    return a[0] <= b[1] and b[0] <= a[1]


def small_sample_factor(n: int) -> float:
    """``sqrt(n/(n-1))·t(n-1)/z``: widens a bootstrap interval from ``n`` >= 2 samples."""
    t = T_975[n - 2] if n - 2 < len(T_975) else Z_975
    return float(np.sqrt(n / (n - 1)) * t / Z_975)
