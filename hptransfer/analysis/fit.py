"""Fitting the optimum of every searched HP in every group of a sweep, and its drift.

A *group* is one value of each axis in ``results.GROUP_AXES`` present in trials.parquet
(parameterization, model, depth, width, density). A *searched* HP is an HP column with more
than one distinct value. Only completed trials with a finite loss at the full horizon are
fitted; each optimum is located as in :mod:`hptransfer.analysis.optimum`, HPs searched
together at the base shape also jointly (:mod:`hptransfer.analysis.joint`), budget lines by
:mod:`hptransfer.analysis.horizon`.

What the fit does, and the fit.json format (``schema_version`` 2) key by key:
``docs/fit.md``. :func:`load_fit` reads it, :func:`write_fit` writes it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hptransfer import provenance
from hptransfer.analysis import results
from hptransfer.analysis.horizon import (
    BATCH,
    EXPONENTS,
    SYMBOLS,
    TOKENS,
    BudgetGrid,
    fit_line,
    line_axis,
)
from hptransfer.analysis.joint import JointOptimum, locate_joint
from hptransfer.analysis.optimum import CLIFF, estimate
from hptransfer.budget import at_batch
from hptransfer.config import BaseHPs, BaseShape, DataConfig, TrainConfig
from hptransfer.errors import ConfigError, DataError, FormatVersionError, ResultsError
from hptransfer.store import location, write_text
from hptransfer.store.folder import (
    CURVES_FILE,
    FIT_FILE,
    RESULTS_ROOT,
    SPEC_FILE,
    TRIALS_FILE,
    latest,
)

SCHEMA_VERSION = 2
METRICS = ("val_loss", "train_loss")


@dataclass(frozen=True)
class FitSettings:
    """How optima are located: loss column, bootstrap size, parabola and slice widths.

    ``at_step``: fit the losses logged at that step (curves.parquet) by every trial that
    reached it, ASHA-stopped ones included, instead of completed trials at the full horizon.
    """

    metric: str = "val_loss"
    n_boot: int = 1000
    window_octaves: float = 1.25
    slice_octaves: float = 0.25
    seed: int = 0
    at_step: int | None = None
    cliff: float = CLIFF

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"metric must be one of {', '.join(METRICS)}; got {self.metric!r}")
        if self.n_boot < 1 or self.window_octaves <= 0 or self.slice_octaves < 0:
            raise ConfigError("n_boot must be >= 1, window_octaves > 0 and slice_octaves >= 0")
        if not self.cliff > 0:
            raise ConfigError(f"cliff must be > 0 (a fraction of the best loss); got {self.cliff}")
        if self.at_step is not None and self.at_step < 1:
            raise ConfigError(f"at_step must be >= 1; got {self.at_step}")


@dataclass(frozen=True)
class HPEstimate:
    """One base HP: its value, log2, 95% interval (HP units) and flag."""

    value: float
    log2: float | None
    ci95: tuple[float, float] | None
    flag: str


@dataclass(frozen=True, eq=False)
class Fit:
    """The contents of fit.json; :func:`load_fit` reads one, :func:`fit_sweep` makes one."""

    sweep: str
    created: str
    metric: str
    horizon: dict[str, int | None]
    spec_hash: list[str]
    base: dict[str, Any]
    parameterizations: list[str]
    searched_hps: list[str]
    group_axes: list[str]
    settings: FitSettings
    base_hps: dict[str, dict[str, HPEstimate]]
    optima: pd.DataFrame = field(repr=False)
    drift: pd.DataFrame = field(repr=False)
    joint: dict[str, dict[str, Any]] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)  # of the process that fitted
    budget: list[dict[str, Any]] = field(default_factory=list)  # η* lines: budget_lines
    # the proxy's data: corpus, vocabulary, tokenizer (hptransfer.data.tokens.data_identity);
    # empty in fits made before it was recorded
    data: dict[str, Any] = field(default_factory=dict)
    # per parameterization, the base settings (readout_zero_init) its targets use; empty in
    # fits made before they were recorded (targets keep the spec's model)
    base_settings: dict[str, dict[str, bool]] = field(default_factory=dict)

    def base_shape(
        self, default_heads: int | None = None, default_depth: int | None = None
    ) -> BaseShape:
        """The shape the base HPs were fitted at; ``default_heads`` and ``default_depth``
        when fit.json does not record the base's heads or depth."""
        heads = self.base.get("heads", default_heads)
        depth = self.base.get("depth", default_depth)
        return BaseShape(
            width=int(self.base["width"]),
            density=float(self.base["density"]),
            heads=None if heads is None else int(heads),
            depth=None if depth is None else int(depth),
        )

    def base_config(self, parameterization: str) -> BaseHPs:
        """The base HPs of ``parameterization`` (fitted or fixed; defaults for the rest)."""
        if parameterization not in self.base_hps or not self.base_hps[parameterization]:
            raise ResultsError(
                f"fit of sweep {self.sweep!r} has no optimum for {parameterization!r} at the "
                f"base shape {self.base}; fitted: {', '.join(self.parameterizations)}"
            )
        hps = self.base_hps[parameterization]
        return BaseHPs(**{name: est.value for name, est in hps.items()})

    def to_json(self) -> dict[str, Any]:
        """The fit.json document (strict JSON types)."""
        return {
            "schema_version": SCHEMA_VERSION,
            **{k: getattr(self, k) for k in _PLAIN_KEYS},
            "provenance": self.provenance,
            "settings": asdict(self.settings),
            "base_hps": {
                p: {hp: asdict(est) for hp, est in hps.items()} for p, hps in self.base_hps.items()
            },
            "optima": _records(self.optima),
            "drift": _records(self.drift),
            "joint": self.joint,
            "budget": self.budget,
            "data": self.data,
            "base_settings": self.base_settings,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Fit:
        return cls(
            **{k: doc[k] for k in _PLAIN_KEYS},
            settings=FitSettings(**doc["settings"]),
            base_hps={
                p: {hp: _hp_estimate(est) for hp, est in hps.items()}
                for p, hps in doc["base_hps"].items()
            },
            optima=pd.DataFrame(doc["optima"]),
            drift=pd.DataFrame(doc["drift"]),
            joint=doc.get("joint", {}),
            provenance=doc.get("provenance", {}),  # absent in version 1
            budget=doc.get("budget", []),  # absent before horizon sweeps
            data=doc.get("data", {}),  # absent before data identities were recorded
            base_settings=doc.get("base_settings", {}),  # absent before readout_zero_init
        )


_PLAIN_KEYS = (
    "sweep",
    "created",
    "metric",
    "horizon",
    "spec_hash",
    "base",
    "parameterizations",
    "searched_hps",
    "group_axes",
)


def _hp_estimate(doc: dict[str, Any]) -> HPEstimate:
    ci95 = doc["ci95"]
    return HPEstimate(doc["value"], doc["log2"], tuple(ci95) if ci95 else None, doc["flag"])


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain JSON values (NaN → None, numpy scalars → Python)."""
    return json.loads(table.to_json(orient="records", double_precision=15))


# ---------------------------------------------------------------------------- selecting trials


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
class _Slice:
    key: dict[str, Any]
    hp: str
    points: pd.DataFrame
    slice_at: dict[str, float] | None
    n_trials: int
    n_diverged: int


def _slices(trials: pd.DataFrame, settings: FitSettings) -> Iterator[_Slice]:
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
            yield _Slice(dict(zip(axes, key, strict=True)), hp, points, at, len(rows), n_diverged)


def seed_points(trials: pd.DataFrame, settings: FitSettings | None = None) -> pd.DataFrame:
    """Tidy points the fit uses: group axes, hp, seed, value, log2, loss (for plots)."""
    settings = settings or FitSettings()
    parts = [s.points.assign(**s.key, hp=s.hp) for s in _slices(trials, settings)]
    axes = group_axes(trials)
    return pd.concat(parts, ignore_index=True)[[*axes, "hp", "seed", "value", "log2", "loss"]]


# ---------------------------------------------------------------------------- fitting


def _optimum_row(s: _Slice, settings: FitSettings, rng: np.random.Generator) -> dict[str, Any]:
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
    return pd.DataFrame([_optimum_row(s, settings, rng) for s in _slices(trials, settings)])


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
    at_base = _at_base(optima, base)
    fixed = {
        hp: HPEstimate(float(v), math.log2(v) if v > 0 else None, None, "fixed")
        for hp in results.HP_NAMES
        if hp in trials and trials[hp].nunique() == 1
        for v in [trials[hp].iloc[0]]
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
    at_base = usable & _at_base(trials, base)
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


def _at_base(table: pd.DataFrame, base: dict[str, Any]) -> pd.Series:
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
    at_base = trials[usable & _at_base(trials, base)]
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


def _joint_record(opt: JointOptimum) -> dict[str, Any]:
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


def fit_trials(
    trials: pd.DataFrame,
    sweep: str,
    spec_base: dict[str, Any] | None = None,
    settings: FitSettings | None = None,
    batch: int | None = None,
    data: dict[str, Any] | None = None,
    batches: dict[int, int] | None = None,
) -> Fit:
    """The full fit of one sweep's trials table (``batch``: the proxy's, from spec.yaml;
    ``data``: its data identity, recorded for ``transfer``; ``batches``: of a sweep over
    batch sizes, each budget's steps → its batch size, ``batch`` the base's)."""
    settings = settings or FitSettings()
    if trials.empty:
        raise ResultsError(f"sweep {sweep!r} has no trials yet: run `hptransfer sweep` first")
    usable, horizon = usable_mask(trials, settings.metric)
    if batches:  # the base HPs are the base batch's, whose steps are not the most
        horizon = next(steps for steps, b in batches.items() if b == batch)
    optima = fit_optima(trials, settings)
    base = base_shape(trials, spec_base)
    chosen = base_settings(trials, usable & _at_horizon(trials, horizon), base, settings.metric)
    proxy = _at_horizon(trials, horizon) & with_settings(trials, chosen)
    joint = joint_at_base(trials[proxy], usable[proxy], base, settings)
    tokens = trials.loc[usable & proxy, "tokens"].max() if "tokens" in trials else None
    hashes = trials["spec_hash"].dropna().astype(str).unique() if "spec_hash" in trials else []
    return Fit(
        sweep=sweep,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        metric=settings.metric,
        horizon={
            "steps": horizon,
            "tokens": None if pd.isna(tokens) else int(tokens),
            "batch": batch,
        },
        spec_hash=sorted(hashes),
        base=base,
        parameterizations=sorted(trials["parameterization"].unique().tolist()),
        searched_hps=searched_hps(trials),
        group_axes=group_axes(trials),
        settings=settings,
        base_hps=base_hps(
            optima[_at_horizon(optima, horizon) & with_settings(optima, chosen)],
            trials[proxy],
            base,
            joint,
        ),
        base_settings=chosen,
        optima=optima,
        drift=drift_table(optima),
        joint={param: _joint_record(opt) for param, opt in joint.items()},
        provenance=provenance.process_fields(),
        budget=budget_lines(trials, optima, settings, batch, batches),
        data=data or {},
    )


def _at_horizon(table: pd.DataFrame, steps: int) -> pd.Series:
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
    for s in _slices(trials, settings):
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


def _grid(s: _Slice, row: dict[str, Any], trials: pd.DataFrame, batch: int | None) -> BudgetGrid:
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


def fit_sweep(sweep_dir: Path, settings: FitSettings | None = None) -> Fit:
    """Fit the sweep stored in ``sweep_dir`` (trials.parquet, optional spec.yaml)."""
    sweep_dir, settings = location(sweep_dir), settings or FitSettings()
    trials = read_fit_trials(sweep_dir, settings)
    spec = results.read_spec_document(sweep_dir) or {}
    data = spec.get("data") or {}
    batches = _batch_steps(spec) if isinstance(data.get("batch_size"), list) else None
    return fit_trials(
        trials,
        sweep_dir.name,
        results.read_spec_base(sweep_dir),
        settings,
        data["batch_size"][0] if batches else data.get("batch_size"),
        _data_identity(data),
        batches,
    )


def _batch_steps(spec: dict[str, Any]) -> dict[int, int]:
    """A sweep over batch sizes (spec.yaml): each batch size's steps → the batch size, every
    batch training the first's tokens (:func:`~hptransfer.budget.at_batch`)."""
    sizes = spec["data"]["batch_size"]
    train, data = TrainConfig(steps=int(spec["train"]["steps"])), DataConfig(batch_size=sizes[0])
    return {at_batch(train, data, size)[0].steps: size for size in sizes}


def _data_identity(data: dict[str, Any]) -> dict[str, Any]:
    """The proxy data's identity from spec.yaml's data section (a token folder's meta.json
    read now); only the corpus when the folder cannot be read here."""
    from hptransfer.data.tokens import data_identity

    corpus = data.get("corpus", "shakespeare")
    try:
        return data_identity(corpus, data.get("path"))
    except DataError:
        return {"corpus": corpus}


# ---------------------------------------------------------------------------- summaries


def optima_summary(fit: Fit) -> pd.DataFrame:
    """The optima as a readable table: varying group axes, HP, optimum, grid arg-min,
    interval (``<``/``>``: cut at the stable grid's end), stable range, flag."""
    optima = fit.optima
    axes = [
        a
        for a in fit.group_axes
        if a in ("parameterization", "width", "density") or optima[a].nunique() > 1
    ]
    return optima[[*axes, "hp"]].assign(
        optimum=[
            f"{v:.3g} (2^{x:.2f})" for v, x in zip(optima["value"], optima["log2"], strict=True)
        ],
        argmin=[_power_of_two(x) for x in optima["argmin_log2"]],
        ci95=[interval(r.ci95_lo, r.ci95_hi, r.ci95_cut) for r in optima.itertuples()],
        stable=[
            f"{_power_of_two(math.log2(lo))}..{_power_of_two(math.log2(hi))}"
            for lo, hi in _stable(optima)
        ],
        flag=optima["flag"],
        method=optima["method"],
        seeds=optima["n_seeds"],
        diverged=optima["n_diverged"],
    )


def joint_summary(joint: dict[str, Any]) -> pd.DataFrame:
    """One parameterization's joint optimum (fit.json's ``joint`` entry) as a readable table."""
    rows = []
    for hp, est in joint["hps"].items():
        ci = est["ci95_log2"]
        rows.append(
            {
                "hp": hp,
                "optimum": f"{est['value']:.3g} (2^{est['log2']:.2f})",
                "ci95": "-" if ci is None else interval(2.0 ** ci[0], 2.0 ** ci[1]),
                "flag": est["flag"],
                "points": f"{joint['n_fitted']}/{joint['n_points']}",
            }
        )
    return pd.DataFrame(rows)


def _power_of_two(log2: float) -> str:
    """``2^-7``, ``2^-3.64``: a grid value by its exponent, to 3 significant digits."""
    return f"2^{log2:.3g}"


def budget_summary(fit: Fit) -> pd.DataFrame:
    """fit.json's η* lines as a readable table: the exponent (γ along the horizon, β along
    the batch), its interval, the optimum at each budget."""
    rows = []
    for line in fit.budget:
        axis = line_axis(line)
        name = "steps" if axis == TOKENS else "batch"
        ci = line["ci95"]
        optima = ", ".join(f"{h[name]}: 2^{h['log2']:.2f}" for h in line["horizons"])
        rows.append(
            {
                "parameterization": line["parameterization"],
                "width": line.get("width"),
                "density": line.get("density"),
                SYMBOLS[axis][0]: round(line[EXPONENTS[axis][0]], 3),
                "ci95": "-" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]",
                "off_line": f"{line['residual_octaves']:.2f} oct",
                f"optimum by {name}": optima,
            }
        )
    return pd.DataFrame(rows)


def _stable(optima: pd.DataFrame) -> list[tuple[float, float]]:
    return list(zip(optima["stable_lo"], optima["stable_hi"], strict=True))


def format_value(value: Any) -> str:
    """A group-axis value for people: true/false, numbers in %g, anything else as str."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    return f"{value:g}" if isinstance(value, (int, float, np.number)) else str(value)


def interval(lo: float, hi: float, cut: str = "none", fmt: str = "{:.3g}") -> str:
    """``[lo, hi]``; an end cut at the stable grid's limit is marked ``<lo`` / ``>hi``, and an
    interval cut at both ends says ``(grid limits)``."""
    if math.isnan(lo):
        return "-"
    low = ("<" if cut in ("low", "both") else "") + fmt.format(lo)
    high = (">" if cut in ("high", "both") else "") + fmt.format(hi)
    return f"[{low}, {high}]" + (" (grid limits)" if cut == "both" else "")


def drift_summary(fit: Fit) -> pd.DataFrame:
    """The drift as a readable table: octaves of the fitted optima and of the grid arg-mins
    per parameterization, HP, axis and held values."""
    drift = fit.drift
    return pd.DataFrame(
        {
            "parameterization": drift["parameterization"],
            "hp": drift["hp"],
            "across": drift["axis"],
            "at": [
                ", ".join(f"{k}={format_value(v)}" for k, v in at.items()) or "-"
                for at in drift["at"]
            ],
            "octaves": drift["octaves"].round(2),
            "grid_argmin": drift["argmin_octaves"].round(2),
            "flagged": [
                f"{f}/{n}" for f, n in zip(drift["n_flagged"], drift["n_optima"], strict=True)
            ],
        }
    )


# ---------------------------------------------------------------------------- fit.json


def write_fit(fit: Fit, sweep_dir: Path) -> Path:
    """Write ``sweep_dir/fit.json`` atomically (temporary file, then rename)."""
    path = location(sweep_dir) / FIT_FILE
    if path.is_file():
        _check_version(_fit_doc(path), path)  # never replace a newer hptransfer's fit
    write_text(path, json.dumps(fit.to_json(), indent=1, allow_nan=False) + "\n")
    return path


def current_fit(sweep_dir: Path, settings: FitSettings | None = None) -> tuple[Fit, bool]:
    """The sweep's fit.json if at least as new as its trials, else a fresh (unwritten) fit.

    The flag says whether fit.json was used.
    """
    path, trials = location(sweep_dir) / FIT_FILE, location(sweep_dir) / TRIALS_FILE
    if path.is_file() and trials.is_file() and path.stat().st_mtime >= trials.stat().st_mtime:
        return load_fit(path), True
    return fit_sweep(sweep_dir, settings), False


def load_fit(path: Path) -> Fit:
    """Read fit.json (``path`` is the file or its sweep folder)."""
    path = location(path)
    if path.is_dir():
        path = path / FIT_FILE
    if not path.is_file():
        raise ResultsError(f"{path} not found: run `hptransfer fit` first")
    doc = _fit_doc(path)
    _check_version(doc, path)
    try:
        return Fit.from_json(doc)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ResultsError(
            f"{path} is not a valid fit.json ({exc}): rerun `hptransfer fit`"
        ) from exc


def _fit_doc(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise ResultsError(
            f"{path} is not a valid fit.json ({exc}): rerun `hptransfer fit`"
        ) from exc
    if not isinstance(doc, dict):
        raise ResultsError(
            f"{path} is not a valid fit.json (not an object): rerun `hptransfer fit`"
        )
    return doc


def _check_version(doc: dict[str, Any], path: Path) -> None:
    """Versions 1 (migrated on read) and 2 are read; anything else is refused in one line."""
    version = doc.get("schema_version")
    if version not in (1, SCHEMA_VERSION) or isinstance(version, bool):
        raise FormatVersionError(
            f"{path} has schema_version {version!r}, not one this hptransfer reads (1 to "
            f"{SCHEMA_VERSION}): upgrade hptransfer to read it (the file was left unchanged)"
        )


def latest_fit(root: Path = RESULTS_ROOT) -> Path:
    """The most recently written fit.json under ``root``."""
    path = latest(root, FIT_FILE)
    if path is None:
        raise ResultsError(f"no {FIT_FILE} under {root}/: run `hptransfer fit` first")
    return path
