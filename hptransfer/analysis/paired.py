"""Comparisons between parameterizations, paired by seed, with an interval on the difference.

Two runs with the same seed share the data order, the random stream of the initial weights
and (with ``model.mask_seed`` null, the default) the sparse masks, so the per-seed
difference cancels much of what the seeds vary. The interval is Student's t over the
per-seed differences: ``mean ± t(0.975, n-1) · sd / √n``. One seed gives no interval. A
comparison whose interval covers zero is reported "within noise".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

LEVEL = 0.95
# The runs of one comparison: same model shape; the parameterization and seed vary.
CELL = ("model", "depth", "width", "density")


@dataclass(frozen=True)
class PairedDifference:
    """``mean`` of (a − b) over the seeds both have, with its ``LEVEL`` interval."""

    mean: float
    low: float
    high: float
    seeds: int

    @property
    def within_noise(self) -> bool:
        """True when the interval covers zero (False without an interval: one seed)."""
        return self.seeds >= 2 and self.low <= 0 <= self.high

    def text(self) -> str:
        """``-0.188 [-0.256, -0.120]``, with "within noise" when the interval covers zero."""
        if self.seeds < 2:
            return f"{self.mean:+.3f} ({self.seeds} seed: no interval)"
        if self.low == self.high == 0:
            return "0 (identical at every seed)"
        noise = " within noise" if self.within_noise else ""
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]{noise}"


def paired_difference(
    a: Mapping[int, float], b: Mapping[int, float], level: float = LEVEL
) -> PairedDifference | None:
    """The mean of ``a[s] - b[s]`` over the seeds ``s`` in both (None when there are none)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    diffs = np.array([a[s] - b[s] for s in seeds], dtype=float)
    mean = float(diffs.mean())
    if len(diffs) < 2:
        return PairedDifference(mean, math.nan, math.nan, 1)
    from scipy.stats import t

    half = float(t.ppf(0.5 + level / 2, len(diffs) - 1) * diffs.std(ddof=1) / math.sqrt(len(diffs)))
    return PairedDifference(mean, mean - half, mean + half, len(diffs))


def losses_by_seed(runs: pd.DataFrame, metric: str = "val_loss") -> dict[int, float] | None:
    """``{seed: loss}`` of runs that all completed without diverging, else None."""
    ok = runs["status"].eq("completed") & ~runs["diverged"].astype(bool)
    if not ok.all() or not np.isfinite(runs[metric].astype(float)).all():
        return None
    return {int(seed): float(loss) for seed, loss in zip(runs["seed"], runs[metric], strict=True)}


def best_point_comparison(
    trials: pd.DataFrame, hps: Sequence[str], metric: str = "val_loss"
) -> pd.DataFrame:
    """Per model shape with several parameterizations: each at its own best grid point (the
    lowest mean loss over seeds, among completed full-horizon runs at every seed), and its
    paired difference to the reference (SP when present, else the first parameterization).

    Columns: the shape, ``parameterization``, the HPs, ``seeds``, ``loss`` (seed mean),
    ``vs`` (the reference) and ``difference`` (text: this − reference, 95% interval).
    """
    cell = [c for c in CELL if c in trials.columns]
    full = trials["steps"].ge(trials["max_steps"]) if "max_steps" in trials else True
    usable = trials[full & trials["status"].eq("completed")]
    rows = []
    for key, runs in usable.groupby(cell, sort=True):
        if runs["parameterization"].nunique() < 2:
            continue
        best = {p: _best_point(part, hps, metric) for p, part in runs.groupby("parameterization")}
        best = {p: b for p, b in best.items() if b is not None}
        reference = "sp" if "sp" in best else next(iter(best), None)
        for name, (point, losses) in best.items():
            diff = paired_difference(losses, best[reference][1]) if name != reference else None
            rows.append(
                {
                    **dict(zip(cell, key if isinstance(key, tuple) else (key,), strict=True)),
                    "parameterization": name,
                    **point,
                    "seeds": len(losses),
                    "loss": float(np.mean(list(losses.values()))),
                    "vs": "" if diff is None else reference,
                    "difference": "" if diff is None else diff.text(),
                }
            )
    return pd.DataFrame(rows)


def _best_point(
    runs: pd.DataFrame, hps: Sequence[str], metric: str
) -> tuple[dict[str, float], dict[int, float]] | None:
    """The HP point with the lowest seed-mean loss among points whose every run converged."""
    seeds = runs["seed"].nunique()
    best = None
    for point, part in runs.groupby(list(hps), sort=True):
        losses = losses_by_seed(part, metric)
        if losses is None or len(losses) < seeds:
            continue
        mean = float(np.mean(list(losses.values())))
        if best is None or mean < best[0]:
            values = point if isinstance(point, tuple) else (point,)
            best = (mean, dict(zip(hps, map(float, values), strict=True)), losses)
    return None if best is None else best[1:]
