"""Which trials a fit uses and how they are sliced: usable trials at the full horizon (or at
one logged step), the searched HPs and group axes, and per (group, HP) the seed-level points
near the best configuration in the other HPs."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hptransfer.analysis import results
from hptransfer.analysis.fit.document import METRICS, FitSettings
from hptransfer.errors import ResultsError
from hptransfer.store.folder import CURVES_FILE


def usable_mask(trials: pd.DataFrame, metric: str) -> tuple[pd.Series, int]:
    """Trials to fit (completed, not diverged, finite loss, full horizon) and that horizon."""
    if metric not in trials.columns:
        raise ResultsError(f"trials have no {metric!r} column")
    ok = (
        trials["status"].eq("completed")
        & ~trials["diverged"].astype(bool)
        & np.isfinite(trials[metric].astype(float))
    )
    if not ok.any():
        raise ResultsError(
            f"all {len(trials)} trials diverged or did not complete: nothing to fit "
            "(lower the HP range or check the sweep's errors)"
        )
    # The store records each trial's budget (max_steps); older tables only the steps run.
    budget = trials["max_steps"] if "max_steps" in trials else trials.loc[ok, "steps"].max()
    full = trials["steps"].ge(budget)
    if not (ok & full).any():
        raise ResultsError("no completed trial ran the full horizon: nothing to fit")
    return ok & full, int(trials.loc[ok & full, "steps"].max())


def trials_at_step(trials: pd.DataFrame, curves: pd.DataFrame, step: int) -> pd.DataFrame:
    """The trials that logged ``step``, with their losses there, as if it were the horizon.

    Trials that errored are dropped; trials that diverged later keep ``diverged``, so their
    grid points count as unstable.
    """
    logged = curves[curves["step"].eq(step)].drop_duplicates("trial_id")
    if logged.empty:
        steps = ", ".join(map(str, sorted(curves["step"].unique().tolist())))
        raise ResultsError(f"no curve point at step {step}; logged steps: {steps}")
    reached = trials.drop(columns=[m for m in METRICS if m in trials]).merge(
        logged[["trial_id", *METRICS]], on="trial_id"
    )
    return reached[reached["status"].ne("error")].assign(
        status="completed", steps=step, max_steps=step
    )


def trials_for_fit(
    trials: pd.DataFrame, curves: pd.DataFrame | None, settings: FitSettings
) -> pd.DataFrame:
    """``trials``, or with ``settings.at_step`` their losses at that step of ``curves``."""
    if settings.at_step is None:
        return trials
    if curves is None:
        raise ResultsError(f"fitting at step {settings.at_step} needs {CURVES_FILE}")
    return trials_at_step(trials, curves, settings.at_step)


def read_fit_trials(sweep_dir: Path, settings: FitSettings) -> pd.DataFrame:
    """The trials table of ``sweep_dir`` as the fit sees it (see :func:`trials_for_fit`)."""
    curves = results.read_curves(sweep_dir) if settings.at_step is not None else None
    return trials_for_fit(results.read_trials(sweep_dir), curves, settings)


def searched_hps(trials: pd.DataFrame) -> list[str]:
    """HP columns with more than one distinct value."""
    return [hp for hp in results.HP_NAMES if hp in trials and trials[hp].nunique() > 1]


def group_axes(trials: pd.DataFrame) -> list[str]:
    """The grouping axes present in ``trials``; the horizon and base settings where they
    vary."""
    axes = [axis for axis in results.GROUP_AXES if axis in trials]
    varying = (results.HORIZON_AXIS, *results.SETTING_AXES)
    return axes + [a for a in varying if a in trials and trials[a].nunique() > 1]


def _log2(values: pd.Series) -> np.ndarray:
    """log2 of positive values, NaN elsewhere."""
    v = values.to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(v > 0, np.log2(v), np.nan)


def _slice(
    group: pd.DataFrame, hp: str, others: list[str], metric: str, octaves: float
) -> tuple[pd.DataFrame, dict[str, float] | None]:
    """The trials of ``group`` near the best configuration in every HP but ``hp``."""
    if not others:
        return group, None
    best = group.groupby([*others, hp])[metric].mean().idxmin()
    at = {h: float(v) for h, v in zip(others, best[:-1], strict=True)}
    near = np.ones(len(group), dtype=bool)
    for h, v in at.items():
        close = np.abs(_log2(group[h]) - (math.log2(v) if v > 0 else np.nan)) <= octaves + 1e-9
        near &= close | group[h].eq(v).to_numpy()
    return group[near], at


def _points(rows: pd.DataFrame, hp: str, metric: str) -> pd.DataFrame:
    """Mean loss per (seed, HP value) over positive HP values: columns seed, value, log2, loss.

    A seed seen at one value only is left out where other seeds have several: it says nothing
    about where the optimum lies (e.g. the extra seeds of a joint sweep's η slice, in the σ and
    α_out slices).
    """
    rows = rows[rows[hp] > 0]
    points = rows.groupby(["seed", hp], as_index=False)[metric].mean()
    points.columns = ["seed", "value", "loss"]
    several = points.groupby("seed")["value"].transform("size") > 1
    points = points[several] if several.any() else points
    return points.assign(log2=np.log2(points["value"].astype(float)))


@dataclass(frozen=True)
class Slice:
    key: dict[str, Any]
    hp: str
    points: pd.DataFrame
    slice_at: dict[str, float] | None
    n_trials: int
    n_diverged: int


def slices(trials: pd.DataFrame, settings: FitSettings) -> Iterator[Slice]:
    """Every (group, searched HP) with the seed-level points its optimum is fitted on.

    Diverged trials stay in, with an infinite loss: they make their grid point unstable.
    """
    usable, _ = usable_mask(trials, settings.metric)
    diverged = trials["status"].eq("completed") & trials["diverged"].astype(bool)
    losses = trials[settings.metric].astype(float).mask(diverged, np.inf)
    hps = searched_hps(trials)
    axes = group_axes(trials)
    for key, group in trials.groupby(axes, dropna=False, sort=True):
        kept = (usable | diverged).loc[group.index]
        fitted = group[kept].assign(**{settings.metric: losses.loc[group.index][kept]})
        varying = [hp for hp in hps if fitted[hp].nunique() > 1]
        for hp in varying:
            others = [h for h in varying if h != hp]
            rows, at = _slice(fitted, hp, others, settings.metric, settings.slice_octaves)
            points = _points(rows, hp, settings.metric)
            n_diverged = int(group["diverged"].astype(bool).sum())
            yield Slice(dict(zip(axes, key, strict=True)), hp, points, at, len(rows), n_diverged)


def seed_points(trials: pd.DataFrame, settings: FitSettings | None = None) -> pd.DataFrame:
    """Tidy points the fit uses: group axes, hp, seed, value, log2, loss (for plots)."""
    settings = settings or FitSettings()
    parts = [s.points.assign(**s.key, hp=s.hp) for s in slices(trials, settings)]
    axes = group_axes(trials)
    return pd.concat(parts, ignore_index=True)[[*axes, "hp", "seed", "value", "log2", "loss"]]
