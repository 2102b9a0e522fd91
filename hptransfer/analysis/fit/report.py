"""What ``hptransfer fit`` prints: the fit's sections as text, and the notes on what to do."""

from __future__ import annotations

import math

import pandas as pd

from hptransfer.analysis.fit.document import Fit
from hptransfer.analysis.fit.summary import (
    budget_summary,
    drift_summary,
    joint_summary,
    optima_summary,
)
from hptransfer.analysis.horizon import SYMBOLS, TOKENS, line_axis
from hptransfer.analysis.paired import best_point_comparison
from hptransfer.analysis.results import read_trials
from hptransfer.store import Location
from hptransfer.store.folder import SPEC_FILE

FEW_SEEDS = 3  # with 2 seeds the bootstrap has only 3 distinct resamples
NAMED = 4  # optima a note names before it counts the rest


def fit_report(fit: Fit, sweep_dir: Location) -> str:
    """The optima, their drift (where the sweep has more than one cell), the joint optima,
    the base settings kept, the budget line, the parameterizations compared at their best
    grid points, and the notes."""
    sections = [
        f"sweep {fit.sweep}: {fit.metric} at {fit.horizon['steps']} steps; base shape "
        f"width {fit.base['width']}, density {fit.base['density']:g} ({fit.base['source']})\n"
        + optima_summary(fit).to_string(index=False),
        *_drift(fit),
        *_joint(fit),
        *_base_settings(fit),
        *_budget(fit),
        *_comparison(fit, sweep_dir),
        *(f"note: {note}" for note in fit_notes(fit, sweep_dir)),
    ]
    return "\n\n".join(sections)


def fit_notes(fit: Fit, sweep_dir: Location) -> list[str]:
    """What to do about edge optima and too few seeds."""
    optima, notes = fit.optima, []
    edges = int(optima["flag"].eq("edge").sum())
    if edges:
        spec = sweep_dir / SPEC_FILE
        how = (
            f"hptransfer sweep {spec} --auto-extend"
            if spec.is_file()
            else "hptransfer sweep <each source spec> --auto-extend, then merge again"
        )
        notes.append(f"{edges} optima sit on the grid's edge; grow the grid past them: {how}")
    few = optima[optima["n_seeds"] < FEW_SEEDS]
    if not few.empty:
        groups = "; ".join(_few_seeds(rows, n) for n, rows in few.groupby("n_seeds"))
        notes.append(
            f"{len(few)} optima rest on fewer than {FEW_SEEDS} seeds, so their intervals mean "
            f"little: {groups}; add seeds (spec seeds, then `hptransfer sweep SPEC --extend`)"
        )
    return notes


def _few_seeds(rows: pd.DataFrame, seeds: int) -> str:
    """``2 on 1 seed (no interval): supar init_std at 64 × 1, ...`` (the first few named)."""
    why = "no interval" if seeds == 1 else f"{math.comb(2 * seeds - 1, seeds)} distinct resamples"
    names = [f"{r.parameterization} {r.hp} at {r.width} × {r.density:g}" for r in rows.itertuples()]
    more = f", and {len(names) - NAMED} more" if len(names) > NAMED else ""
    plural = "s" * (seeds != 1)
    return f"{len(rows)} on {seeds} seed{plural} ({why}): {', '.join(names[:NAMED])}{more}"


def _drift(fit: Fit) -> list[str]:
    if fit.drift.empty or not fit.drift["n_optima"].gt(1).any():  # one cell: nothing drifts
        return []
    return [
        "drift of the optimum (octaves = max - min of log2, of the fitted optima and of the "
        "grid arg-mins; flagged = optima not ok):\n" + drift_summary(fit).to_string(index=False)
    ]


def _joint(fit: Fit) -> list[str]:
    return [
        f"joint optimum of {param} at the base shape (loss {joint['loss']:.4f}):\n"
        + joint_summary(joint).to_string(index=False)
        for param, joint in fit.joint.items()
    ]


def _base_settings(fit: Fit) -> list[str]:
    return [
        f"base setting of {param} (the lower loss at the base shape; base HPs are its): "
        + ", ".join(f"{a} {str(v).lower()}" for a, v in chosen.items())
        for param, chosen in fit.base_settings.items()
        if any(a in fit.group_axes for a in chosen)  # searched: say which one was kept
    ]


def _budget(fit: Fit) -> list[str]:
    if not fit.budget:
        return []
    axis = line_axis(fit.budget[0])
    over = "horizon" if axis == TOKENS else "batch size at fixed tokens"
    return [
        f"the LR optimum over the {over}: {SYMBOLS[axis][1]} (budget rule fitted):\n"
        + budget_summary(fit).to_string(index=False)
    ]


def _comparison(fit: Fit, sweep_dir: Location) -> list[str]:
    """Parameterizations of one shape, each at its own best grid point, paired by seed."""
    table = best_point_comparison(read_trials(sweep_dir), fit.searched_hps, fit.metric)
    if table.empty:
        return []
    for hp in fit.searched_hps:
        table[hp] = [f"2^{math.log2(v):.2f}" if v > 0 else f"{v:g}" for v in table[hp]]
    return [
        f"each parameterization at its best grid point ({fit.metric}, seed mean); "
        "difference to the reference paired by seed, 95% interval:\n"
        + table.to_string(index=False, float_format=lambda v: f"{v:.4g}")
    ]
