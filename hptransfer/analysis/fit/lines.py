"""fit.json's ``budget``: the η* line of each group of a sweep over several budgets
(the line itself: :mod:`hptransfer.analysis.horizon`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from hptransfer.analysis import results
from hptransfer.analysis.fit.document import FitSettings
from hptransfer.analysis.fit.selection import Slice, slices
from hptransfer.analysis.fit.summary import format_value
from hptransfer.analysis.horizon import BATCH, TOKENS, BudgetGrid, fit_line


def at_horizon(table: pd.DataFrame, steps: int) -> pd.Series:
    """Rows at the proxy's horizon ``steps`` (every row unless the horizon is a group axis)."""
    axis = results.HORIZON_AXIS
    if axis in table and table[axis].nunique() > 1:
        return table[axis].eq(steps)
    return pd.Series(True, index=table.index)


def budget_lines(
    trials: pd.DataFrame,
    optima: pd.DataFrame,
    settings: FitSettings,
    batch: int | None = None,
    batches: dict[int, int] | None = None,
) -> list[dict[str, Any]]:
    """fit.json's ``budget``: per group of a sweep over several budgets, the line through
    its LR optima (:mod:`hptransfer.analysis.horizon`) and the budgets it was fitted on:
    along the tokens (log2 η*(D) = a − γ·log2 D) for a sweep over horizons, along the batch
    (log2 η*(B) = a + β·log2 B) for one over batch sizes (``batches``: steps → batch size;
    ``batch``: the one batch of a sweep over horizons). Empty for a sweep at one budget."""
    axis = results.HORIZON_AXIS
    if axis not in optima:
        return []
    rows = optima[optima["hp"].eq("lr")]
    by_key = {_key(r, axis): r for r in rows.to_dict("records")}
    groups: dict[tuple, list[BudgetGrid]] = {}
    for s in slices(trials, settings):
        if s.hp == "lr":
            row = by_key[_key(s.key, axis)]
            steps = int(s.key[axis])
            grid = _grid(s, row, trials, batches[steps] if batches else batch)
            groups.setdefault(_key(s.key, axis, drop=True), []).append(grid)
    along = BATCH if batches else TOKENS
    rng = np.random.default_rng(settings.seed)
    out = []
    for grids in groups.values():
        grids.sort(key=lambda g: (getattr(g, along) or 0, g.tokens))  # along the line
        fitted = fit_line(
            grids, along, settings.window_octaves, settings.cliff, settings.n_boot, rng
        )
        key = {k: v for k, v in by_key[_key(grids[0].key, axis)].items() if k in grids[0].key}
        key.pop(axis)
        out.append({**key, "hp": "lr", **fitted.to_json(), "horizons": [g.record() for g in grids]})
    return out


def _key(row: dict[str, Any], axis: str, drop: bool = False) -> tuple:
    """A group's key as a tuple of its axis values (``drop``: without the horizon)."""
    return tuple(
        (k, format_value(row[k])) for k in (*results.GROUP_AXES, axis) if k in row
        if not (drop and k == axis)
    )  # fmt: skip


def _grid(s: Slice, row: dict[str, Any], trials: pd.DataFrame, batch: int | None) -> BudgetGrid:
    matrix = s.points.pivot_table(index="seed", columns="log2", values="loss", aggfunc="mean")
    mine = np.ones(len(trials), dtype=bool)
    for k, v in s.key.items():
        mine &= trials[k].astype(str).eq(str(v)).to_numpy() if k in trials else True
    lo, hi = row["ci95_lo"], row["ci95_hi"]
    return BudgetGrid(
        key=s.key,
        steps=int(s.key[results.HORIZON_AXIS]),
        tokens=int(trials.loc[mine, "tokens"].max()),
        batch=batch,
        log2=float(row["log2"]),
        flag=str(row["flag"]),
        ci95=None if pd.isna(lo) else (math.log2(lo), math.log2(hi)),
        x=matrix.columns.to_numpy(float),
        losses=matrix.to_numpy(float),
    )
