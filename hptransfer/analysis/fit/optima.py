"""The optimum of every searched HP in every group (:mod:`hptransfer.analysis.optimum`),
and its drift along each swept axis."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hptransfer.analysis import results
from hptransfer.analysis.fit.document import FitSettings
from hptransfer.analysis.fit.selection import Slice, searched_hps, slices
from hptransfer.analysis.optimum import estimate
from hptransfer.errors import ResultsError


def _optimum_row(s: Slice, settings: FitSettings, rng: np.random.Generator) -> dict[str, Any]:
    matrix = s.points.pivot_table(index="seed", columns="log2", values="loss", aggfunc="mean")
    x = matrix.columns.to_numpy(float)
    opt = estimate(
        x, matrix.to_numpy(float), settings.window_octaves, settings.n_boot, rng, settings.cliff
    )
    lo, hi = opt.ci95 if opt.ci95 else (np.nan, np.nan)
    return {
        **s.key,
        "hp": s.hp,
        "value": 2.0**opt.log2,
        "log2": opt.log2,
        "ci95_lo": 2.0**lo,
        "ci95_hi": 2.0**hi,
        "ci95_cut": opt.ci95_cut,
        "flag": opt.flag,
        "argmin": 2.0**opt.argmin,
        "argmin_log2": opt.argmin,
        "stable_lo": 2.0 ** opt.stable[0],
        "stable_hi": 2.0 ** opt.stable[1],
        "method": "slice" if s.slice_at else "grid",
        "slice_at": s.slice_at,
        "curvature": opt.curvature,
        "loss": opt.loss,
        "n_points": len(x),
        "n_unstable": int(((x < opt.stable[0]) | (x > opt.stable[1])).sum()),
        "n_fitted": opt.n_fitted,
        "n_seeds": len(matrix),
        "n_trials": s.n_trials,
        "n_diverged": s.n_diverged,
    }


def fit_optima(trials: pd.DataFrame, settings: FitSettings | None = None) -> pd.DataFrame:
    """One row per (group, searched HP): the optimum, its interval and flag (see module doc)."""
    settings = settings or FitSettings()
    if not searched_hps(trials):
        looked = ", ".join(results.HP_NAMES)
        raise ResultsError(f"no HP varies across the trials (looked for {looked}): nothing to fit")
    rng = np.random.default_rng(settings.seed)
    return pd.DataFrame([_optimum_row(s, settings, rng) for s in slices(trials, settings)])


def drift_table(optima: pd.DataFrame) -> pd.DataFrame:
    """Drift in octaves per parameterization and HP: overall and along each swept axis."""
    candidates = (*results.GROUP_AXES[1:], results.HORIZON_AXIS)
    axes = [a for a in candidates if a in optima and optima[a].nunique() > 1]
    rows = []
    for (param, hp), part in optima.groupby(["parameterization", "hp"], sort=True):
        rows.append(_drift_row(param, hp, "all", {}, part))
        for axis in axes:
            held = [a for a in axes if a != axis]
            for at, sub in part.groupby(held) if held else [((), part)]:
                if sub[axis].nunique() > 1:
                    rows.append(_drift_row(param, hp, axis, dict(zip(held, at, strict=True)), sub))
    return pd.DataFrame(rows)


def _drift_row(
    param: str, hp: str, axis: str, at: dict[str, Any], optima: pd.DataFrame
) -> dict[str, Any]:
    return {
        "parameterization": param,
        "hp": hp,
        "axis": axis,
        "at": at,
        "octaves": float(optima["log2"].max() - optima["log2"].min()),
        "argmin_octaves": float(optima["argmin_log2"].max() - optima["argmin_log2"].min()),
        "n_optima": len(optima),
        "n_flagged": int(optima["flag"].ne("ok").sum()),
    }
