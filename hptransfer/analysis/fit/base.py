"""The base shape the fit reports, the base HPs there (the joint optimum where several HPs
were searched together, :mod:`hptransfer.analysis.joint`) and the base settings chosen."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from hptransfer.analysis import results
from hptransfer.analysis.fit.document import FitSettings, HPEstimate
from hptransfer.analysis.fit.selection import searched_hps
from hptransfer.analysis.joint import JointOptimum, locate_joint
from hptransfer.param import BaseHPs
from hptransfer.store.folder import SPEC_FILE, TRIALS_FILE

# A base HP added after fit.json files were committed, held fixed at its default, is left out
# (a reader takes the default): refitting an older study writes the file it holds.
UNWRITTEN_AT_DEFAULT = {"lr_emb_ratio": BaseHPs.lr_emb_ratio}


def base_shape(trials: pd.DataFrame, spec_base: dict[str, Any] | None) -> dict[str, Any]:
    """The base shape: the trials' base_width/base_density columns, else spec.yaml's ``base``,
    else the smallest width at the highest density; with the heads its trials had, and the
    depth spec.yaml's ``base`` records (a sweep over depth records it), else the smallest of
    several (a merged depth study)."""
    shape = _base_width_density(trials, spec_base)
    heads = _base_heads(trials, shape)
    depth = (spec_base or {}).get("depth")
    if depth is None and "depth" in trials and trials["depth"].nunique() > 1:
        depth = trials["depth"].min()
    source = shape.pop("source")
    return {
        **shape,
        **({} if heads is None else {"heads": heads}),
        **({} if depth is None else {"depth": int(depth)}),
        "source": source,
    }


def _base_width_density(trials: pd.DataFrame, spec_base: dict[str, Any] | None) -> dict[str, Any]:
    columns = trials.reindex(columns=["base_width", "base_density"]).dropna().drop_duplicates()
    if len(columns) == 1:
        width, density = columns.iloc[0]
        return {"width": int(width), "density": float(density), "source": TRIALS_FILE}
    if spec_base:
        return {"density": 1.0, **spec_base, "source": SPEC_FILE}
    density = float(trials["density"].max())
    width = int(trials.loc[trials["density"].eq(density), "width"].min())
    note = "dense" if density == 1 else f"density {density:g}"
    return {
        "width": width,
        "density": density,
        "source": f"smallest {note} width (spec.yaml has no base)",
    }


def _base_heads(trials: pd.DataFrame, shape: dict[str, Any]) -> int | None:
    """The one head count of the trials at the base shape (else of all trials), or None."""
    if "heads" in shape:
        return int(shape["heads"])
    if "heads" not in trials:
        return None
    at_base = trials["width"].eq(shape["width"]) & np.isclose(trials["density"], shape["density"])
    for rows in (trials[at_base], trials):
        heads = rows["heads"].dropna().unique()
        if len(heads) == 1:
            return int(heads[0])
    return None


def base_hps(
    optima: pd.DataFrame,
    trials: pd.DataFrame,
    base: dict[str, Any],
    joint: dict[str, JointOptimum] | None = None,
) -> dict[str, dict[str, HPEstimate]]:
    """Per parameterization: the optima at the base shape (the joint optimum where several
    HPs were searched together there), plus the HPs held fixed."""
    at_base = at_base_shape(optima, base)
    fixed = {
        hp: HPEstimate(float(v), math.log2(v) if v > 0 else None, None, "fixed")
        for hp in results.HP_NAMES
        if hp in trials and trials[hp].nunique() == 1
        for v in [trials[hp].iloc[0]]
        if UNWRITTEN_AT_DEFAULT.get(hp) != v
    }
    out: dict[str, dict[str, HPEstimate]] = {}
    for param in sorted(trials["parameterization"].unique()):
        rows = optima[at_base & optima["parameterization"].eq(param)].drop_duplicates("hp")
        fitted = {r.hp: _estimate_of(r) for r in rows.itertuples()}
        if joint and param in joint:
            fitted.update(_joint_estimates(joint[param]))
        out[param] = {**fixed, **fitted} if fitted else {}
    return out


def _joint_estimates(opt: JointOptimum) -> dict[str, HPEstimate]:
    return {
        hp: HPEstimate(
            opt.value(hp),
            opt.log2[hp],
            None if opt.ci95[hp] is None else (2.0 ** opt.ci95[hp][0], 2.0 ** opt.ci95[hp][1]),
            opt.flags[hp],
        )
        for hp in opt.hps
    }


def joint_at_base(
    trials: pd.DataFrame, usable: pd.Series, base: dict[str, Any], settings: FitSettings
) -> dict[str, JointOptimum]:
    """Per parameterization, the joint optimum (:mod:`~hptransfer.analysis.joint`) of the HPs
    that vary together among its usable trials at the base shape, if two or more do."""
    at_base = usable & at_base_shape(trials, base)
    out = {}
    for param, runs in trials[at_base].groupby("parameterization", sort=True):
        varying = [hp for hp in searched_hps(trials) if runs[hp].nunique() > 1]
        if len(varying) >= 2:
            rng = np.random.default_rng(settings.seed)
            out[str(param)] = locate_joint(
                runs, varying, settings.metric, window=settings.window_octaves,
                n_boot=settings.n_boot, rng=rng,
            )  # fmt: skip
    return out


def at_base_shape(table: pd.DataFrame, base: dict[str, Any]) -> pd.Series:
    """Rows of ``table`` (trials or optima) at the base shape."""
    at_base = pd.Series(True, index=table.index)
    for axis in ("width", "density", "depth"):
        if axis in base and axis in table:
            at_base &= np.isclose(table[axis].astype(float), float(base[axis]))
    return at_base


def base_settings(
    trials: pd.DataFrame, usable: pd.Series, base: dict[str, Any], metric: str
) -> dict[str, dict[str, bool]]:
    """Per parameterization, each base setting (:data:`results.SETTING_AXES`) the trials
    record: where the sweep searched it at the base shape, the value whose best point (the
    lowest loss averaged over seeds) is lower; else the one value its trials had."""
    at_base = trials[usable & at_base_shape(trials, base)]
    axes = [a for a in results.SETTING_AXES if a in trials and at_base[a].notna().any()]
    hps = searched_hps(trials)
    out: dict[str, dict[str, bool]] = {}
    for param, runs in at_base.groupby("parameterization", sort=True):
        chosen = {}
        for axis in axes:
            point_means = runs.groupby([axis, *hps])[metric].mean()
            chosen[axis] = bool(point_means.groupby(level=0).min().idxmin())
        out[str(param)] = chosen
    return out


def with_settings(table: pd.DataFrame, chosen: dict[str, dict[str, bool]]) -> pd.Series:
    """Rows of ``table`` (trials or optima) whose base settings are their parameterization's
    ``chosen`` ones (every row, for a setting not chosen or no column of ``table``)."""
    keep = pd.Series(True, index=table.index)
    for axis in results.SETTING_AXES:
        if axis in table:
            wanted = table["parameterization"].map(lambda p, a=axis: chosen.get(p, {}).get(a))
            keep &= wanted.isna() | table[axis].astype(object).eq(wanted)
    return keep


def joint_record(opt: JointOptimum) -> dict[str, Any]:
    """fit.json's ``joint`` entry of one parameterization."""
    return {
        "hps": {
            hp: {
                "value": opt.value(hp),
                "log2": opt.log2[hp],
                "flag": opt.flags[hp],
                "ci95_log2": None if opt.ci95[hp] is None else list(opt.ci95[hp]),
            }
            for hp in opt.hps
        },
        "loss": opt.loss,
        "n_points": opt.n_points,
        "n_fitted": opt.n_fitted,
    }


def _estimate_of(row: Any) -> HPEstimate:
    ci = None if math.isnan(row.ci95_lo) else (float(row.ci95_lo), float(row.ci95_hi))
    return HPEstimate(float(row.value), float(row.log2), ci, row.flag)
