"""Transfer regret: what training with the transferred HPs costs against tuning at the target.

``hptransfer transfer --regret`` trains, at each target and for each parameterization, the
base LR η times ``2^k`` for k in :data:`OFFSETS` (half octaves around the transferred η;
k = 0 is the transferred run itself), with the same seeds. Per target and parameterization:

- ``transferred_loss``: the mean loss over seeds at the transferred η;
- ``tuned_loss``: the lowest mean loss over the grid (what a small search at the target finds);
- ``regret_pct``: ``100·(transferred − tuned)/tuned`` (0 when the transferred η is the best);
- ``regret_ci95_lo``/``_hi``: its 95% interval, paired by seed (the per-seed difference
  between the two η, :mod:`hptransfer.analysis.paired`), in % of ``tuned_loss``; NaN with
  one seed or when the transferred η is the best. An interval covering 0 is "within noise".
  (The tuned η is picked by its seed mean, so noise biases the regret up, never down.)
- ``flag``: ``edge`` when the best grid point is an end of the grid (a better η may lie
  beyond: the regret is a lower bound), ``diverged`` when a run at the transferred η
  diverged (or failed), ``missing`` when none was trained, ``partial`` when a grid point has
  no loss, or fewer seeds than another (the regret is then a lower bound too), else ``ok``.

A target is a shape (width, density, depth) trained for a budget (``max_steps``, ``tokens``)
under a ``budget_rule``: the same shape at two budgets, or moved by two rules, gets two rows.
The table is stored as ``regret.parquet`` beside the transfer runs (a new measurement replaces
the stored row of the same target and parameterization, and keeps the others) and drawn by
``plot``. A table written before budgets were recorded lacks the budget columns: they read as
unknown (``<NA>``, rule ""), and its rows are replaced by a new measurement of the same shape.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hptransfer.analysis import results
from hptransfer.analysis.paired import paired_difference
from hptransfer.store import atomic_write, location
from hptransfer.store.folder import REGRET_FILE
from hptransfer.store.schema import VERSION_METADATA

OFFSETS = (-1.0, -0.5, 0.0, 0.5, 1.0)  # octaves around the transferred η
TARGET_AXES = ("width", "density", "depth")
BUDGET = ("max_steps", "tokens", "budget_rule")  # absent from the first regret tables
TARGET = (*TARGET_AXES, *BUDGET)
KEYS = (*TARGET, "parameterization")
COLUMNS = (
    *KEYS, "seeds", "transferred_lr", "transferred_loss",
    "tuned_lr", "tuned_loss", "regret_pct", "regret_ci95_lo", "regret_ci95_hi", "flag",
)  # fmt: skip


def regret_table(
    runs: pd.DataFrame, transferred_lr: float, metric: str = "val_loss", budget_rule: str = ""
) -> pd.DataFrame:
    """One row per (target, parameterization) of the regret grid runs (see module doc), the
    targets' budgets moved by ``budget_rule``."""
    rows = []
    runs = runs.assign(tokens=planned_tokens(runs))
    grouped = runs.groupby([*TARGET_AXES, "max_steps", "tokens", "parameterization"], sort=False)
    for (width, density, depth, max_steps, tokens, param), part in grouped:
        rows.append(
            {
                "width": int(width),
                "density": float(density),
                "depth": int(depth),
                "max_steps": int(max_steps),
                "tokens": int(tokens),
                "budget_rule": budget_rule,
                "parameterization": param,
                **_regret(part, transferred_lr, metric),
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def planned_tokens(runs: pd.DataFrame) -> pd.Series:
    """The tokens each run was planned for: a run stopped early (it diverged) recorded only
    the tokens it saw, and still belongs to its target's budget."""
    if "steps" not in runs:
        return runs["tokens"]
    per_step = runs["tokens"] / runs["steps"].where(runs["steps"] > 0)
    planned = (per_step * runs["max_steps"]).round()
    same_budget = [runs[axis] for axis in (*TARGET_AXES, "max_steps")]
    return planned.fillna(planned.groupby(same_budget).transform("max"))


def _regret(part: pd.DataFrame, transferred_lr: float, metric: str) -> dict[str, object]:
    usable = part["status"].eq("completed") & ~part["diverged"].astype(bool)
    loss = part[metric].where(usable)  # NaN where diverged or failed
    # A point where any seed diverged or failed has no mean (not the mean of the others).
    means = loss.groupby(part["lr"]).agg(lambda seeds: seeds.mean(skipna=False)).sort_index()
    at_transfer = np.isclose(means.index, transferred_lr)
    transferred = float(means[at_transfer].iloc[0]) if at_transfer.any() else math.nan
    if means.isna().all():
        return _row(part, transferred_lr, math.nan, math.nan, math.nan, "diverged")
    best_lr = float(means.idxmin())
    tuned = float(means.min())
    if not at_transfer.any():
        flag = "missing"
    elif math.isnan(transferred):
        flag = "diverged"
    elif means.notna().sum() < len(OFFSETS) or _seeds_missing(part):
        flag = "partial"
    elif best_lr in (means.index[0], means.index[-1]) and not np.isclose(best_lr, transferred_lr):
        flag = "edge"
    else:
        flag = "ok"
    regret = 100 * (transferred - tuned) / tuned
    interval = _paired_interval(part, loss, transferred_lr, best_lr, tuned)
    return _row(part, transferred_lr, transferred, best_lr, tuned, flag, regret, interval)


def _paired_interval(
    part: pd.DataFrame, loss: pd.Series, transferred_lr: float, best_lr: float, tuned: float
) -> tuple[float, float]:
    """The regret's 95% interval in % of ``tuned``, over the seeds run at both η."""
    by_seed = loss.groupby([part["lr"], part["seed"]]).mean().dropna()
    at = {lr: by_seed[lr].to_dict() for lr in by_seed.index.get_level_values(0).unique()}
    a = next((v for lr, v in at.items() if np.isclose(lr, transferred_lr)), {})
    diff = paired_difference(a, at.get(best_lr, {}))
    if diff is None or diff.seeds < 2 or np.isclose(best_lr, transferred_lr):
        return math.nan, math.nan
    return 100 * diff.low / tuned, 100 * diff.high / tuned


def _seeds_missing(part: pd.DataFrame) -> bool:
    """Whether some grid point lacks a seed that another point has."""
    return bool(part.groupby("lr")["seed"].nunique().min() < part["seed"].nunique())


def _row(
    part: pd.DataFrame,
    transferred_lr: float,
    transferred: float,
    tuned_lr: float,
    tuned: float,
    flag: str,
    regret: float = math.nan,
    interval: tuple[float, float] = (math.nan, math.nan),
) -> dict[str, object]:
    return {
        "seeds": int(part["seed"].nunique()),
        "transferred_lr": transferred_lr,
        "transferred_loss": transferred,
        "tuned_lr": tuned_lr,
        "tuned_loss": tuned,
        "regret_pct": regret,
        "regret_ci95_lo": interval[0],
        "regret_ci95_hi": interval[1],
        "flag": flag,
    }


def regret_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The regret table for people: target, parameterization, losses, regret, tuned η."""
    return pd.DataFrame(
        {
            "target (width × density, depth)": shape_labels(table),
            "parameterization": table["parameterization"],
            "seeds": table["seeds"],
            "budget": budget_labels(table),
            "transferred": table["transferred_loss"].map("{:.4f}".format),
            "tuned at target": table["tuned_loss"].map("{:.4f}".format),
            "regret": table["regret_pct"].map("{:.2f}%".format),
            "95% CI (paired)": [
                _interval_text(lo, hi)
                for lo, hi in zip(table["regret_ci95_lo"], table["regret_ci95_hi"], strict=True)
            ],
            "tuned η / transferred η": [
                f"2^{math.log2(t / x):+.1f}" if t > 0 else "-"
                for t, x in zip(table["tuned_lr"].fillna(0), table["transferred_lr"], strict=True)
            ],
            "flag": table["flag"],
        }
    )


def shape_labels(table: pd.DataFrame) -> list[str]:
    """Each row's target shape for people: ``256 × 0.25, depth 8``."""
    columns = (table["width"], table["density"], table["depth"])
    return [f"{w} × {d:g}, depth {n}" for w, d, n in zip(*columns, strict=True)]


def budget_labels(table: pd.DataFrame) -> list[str]:
    """Each row's budget for people: its steps and the rule that moved the HPs to it."""
    return [
        "-" if pd.isna(steps) else f"{steps} steps" + (f", {rule}" if rule else "")
        for steps, rule in zip(table["max_steps"], table["budget_rule"], strict=True)
    ]


def _interval_text(lo: float, hi: float) -> str:
    if math.isnan(lo):
        return "-"
    return f"[{lo:+.2f}%, {hi:+.2f}%]" + (" within noise" if lo <= 0 <= hi else "")


def write_regret(table: pd.DataFrame, sweep_dir: Path) -> Path:
    """Merge ``table`` into ``sweep_dir/regret.parquet`` (its targets replace stored rows)."""
    path = location(sweep_dir) / REGRET_FILE
    stored = read_regret(sweep_dir)
    if stored is not None:
        table = pd.concat([stored[~_replaced(stored, table)], table], ignore_index=True)
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), **VERSION_METADATA})
    atomic_write(path, lambda f: pq.write_table(arrow, f))
    return path


def _replaced(stored: pd.DataFrame, fresh: pd.DataFrame) -> np.ndarray:
    """The stored rows ``fresh`` measures again: same target and parameterization, or, for a
    row of unknown budget, the same shape and parameterization."""

    def measured(columns: list[str]) -> np.ndarray:
        return stored.set_index(columns).index.isin(fresh.set_index(columns).index)

    unknown_budget = stored["max_steps"].isna().to_numpy()
    return measured(list(KEYS)) | (unknown_budget & measured([*TARGET_AXES, "parameterization"]))


def read_regret(sweep_dir: Path) -> pd.DataFrame | None:
    """The stored regret table, or None if ``transfer --regret`` never ran here."""
    path = location(sweep_dir) / REGRET_FILE
    if not path.is_file():
        return None
    table = results.read_table(path, [c for c in COLUMNS if c not in BUDGET])
    unknown = {"max_steps": pd.NA, "tokens": pd.NA, "budget_rule": ""}
    table = table.assign(**{c: v for c, v in unknown.items() if c not in table})
    return table.astype({"max_steps": "Int64", "tokens": "Int64"})[list(COLUMNS)]
