"""Fitting the optimum of every searched HP in every group of a sweep, and its drift.

A *group* is one value of each axis in ``results.GROUP_AXES`` present in trials.parquet
(parameterization, model, depth, width, density). A *searched* HP is an HP column with more
than one distinct value. Only completed trials with a finite loss at the full horizon are
fitted; each optimum is located as in :mod:`hptransfer.analysis.optimum`, HPs searched
together at the base shape also jointly (:mod:`hptransfer.analysis.joint`), budget lines by
:mod:`hptransfer.analysis.horizon`.

One job per module: ``selection`` (which trials, sliced how), ``optima`` (one per group and
HP, and their drift), ``base`` (the base shape, base HPs and base settings), ``lines`` (budget
lines), ``summary`` (readable tables), ``document`` (fit.json: :func:`load_fit` reads it,
:func:`write_fit` writes it), ``pipeline`` (the whole fit of a sweep), ``report`` (what
``hptransfer fit`` prints), ``command`` (a whole ``hptransfer fit``). What the fit does, and
the fit.json format (``schema_version`` 2) key by key: ``docs/fit.md``.
"""

from hptransfer.analysis.fit.document import (
    SCHEMA_VERSION,
    Fit,
    FitSettings,
    HPEstimate,
    latest_fit,
    load_fit,
    write_fit,
)
from hptransfer.analysis.fit.optima import fit_optima
from hptransfer.analysis.fit.pipeline import current_fit, fit_sweep, fit_trials
from hptransfer.analysis.fit.selection import (
    group_axes,
    read_fit_trials,
    searched_hps,
    seed_points,
    trials_for_fit,
    usable_mask,
)
from hptransfer.analysis.fit.summary import (
    budget_summary,
    drift_summary,
    format_value,
    interval,
    joint_summary,
    optima_summary,
)

__all__ = [
    "SCHEMA_VERSION",
    "Fit",
    "FitSettings",
    "HPEstimate",
    "budget_summary",
    "current_fit",
    "drift_summary",
    "fit_optima",
    "fit_sweep",
    "fit_trials",
    "format_value",
    "group_axes",
    "interval",
    "joint_summary",
    "latest_fit",
    "load_fit",
    "optima_summary",
    "read_fit_trials",
    "searched_hps",
    "seed_points",
    "trials_for_fit",
    "usable_mask",
    "write_fit",
]
