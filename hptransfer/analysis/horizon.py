"""How the optimal learning rate moves with the training budget: a line in log2 per group.

Along the horizon (a sweep over ``train.steps: [..]``): log2 η*(D) = a − γ·log2 D, D the
tokens; γ is the exponent of η* ∝ D^-γ (Bjorck et al., ICLR 2025). Along the batch size at
fixed tokens (a sweep over ``data.batch_size: [..]``): log2 η*(B) = a + β·log2 B, β the
exponent of η* ∝ B^β (Complete(d)P's closed form says β = 1/2). Each budget swept has one LR
optimum per group (:mod:`hptransfer.analysis.fit` locates each, with its seed bootstrap);
this module fits the line through them, which ``budget_rule: fitted``
(:mod:`hptransfer.budget`) extrapolates to a target's tokens or batch.

The interval reuses the optimum's bootstrap: each budget's seeds are resampled
(:func:`~hptransfer.analysis.optimum.bootstrap`), replicate ``r`` of every budget gives one
line, and the exponent's 95% interval is the percentile interval of those lines' slopes,
widened like the optimum's (``small_sample_factor`` of the fewest seeds, at least 2). A
budget trained with one seed (long horizons are costly) borrows the seed noise of the others:
its replicates are normal around its optimum with their median spread. It carries the seed
noise of the optima, not a misfit of the power law: with three budgets the line has one
degree of freedom, and ``residual_octaves`` (the largest distance of an optimum from the
line) says how straight the three points are. The replicate lines' covariance of (a, slope)
gives the interval of a prediction (:meth:`BudgetLine.interval`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hptransfer.analysis.optimum import TAIL, Z_975, bootstrap, small_sample_factor
from hptransfer.param.base import BudgetMultipliers
from hptransfer.param.rules import COMPLETEDP

if TYPE_CHECKING:
    from hptransfer.analysis.fit import Fit

MIN_POINTS = 3  # budgets on a line: a line and one degree of freedom to see its misfit
TOKENS, BATCH = "tokens", "batch"
# The exponent each axis reports, and its sign against the line's slope in log2.
EXPONENTS = {TOKENS: ("gamma", -1.0), BATCH: ("beta", 1.0)}
SYMBOLS = {TOKENS: ("γ", "log2 η*(D) = a − γ·log2 D"), BATCH: ("β", "log2 η*(B) = a + β·log2 B")}


@dataclass(frozen=True)
class BudgetGrid:
    """One budget of one group (``key``: its axis values): its steps, tokens and batch, the
    located optimum (log2), flag and interval, and the seed × grid-point losses it was
    located on (``x``: the grid's log2 values)."""

    key: dict[str, Any]
    steps: int
    tokens: int
    batch: int | None
    log2: float
    flag: str
    ci95: tuple[float, float] | None
    x: np.ndarray
    losses: np.ndarray

    def record(self) -> dict[str, Any]:
        """fit.json's entry of this budget."""
        return {
            "steps": self.steps,
            "tokens": self.tokens,
            "batch": self.batch,
            "log2": self.log2,
            "flag": self.flag,
            "ci95_log2": None if self.ci95 is None else list(self.ci95),
            "n_seeds": int(self.losses.shape[0]),
        }


@dataclass(frozen=True)
class BudgetLine:
    """The line log2 η* = ``intercept`` + ``slope``·log2 x of one group, x the ``axis``
    (tokens or batch) of the budget; ``ci95`` is the slope's interval, ``cov`` the
    covariance of (intercept, slope)."""

    axis: str
    slope: float
    ci95: tuple[float, float] | None
    intercept: float
    cov: tuple[tuple[float, float], tuple[float, float]] | None
    residual_octaves: float
    n_located: int  # bootstrap replicates that located every budget's optimum

    @property
    def exponent(self) -> float:
        """What the axis reports: γ = −slope (η* ∝ D^-γ), β = slope (η* ∝ B^β)."""
        return EXPONENTS[self.axis][1] * self.slope

    @property
    def exponent_ci95(self) -> tuple[float, float] | None:
        if self.ci95 is None:
            return None
        ends = sorted(EXPONENTS[self.axis][1] * end for end in self.ci95)
        return ends[0], ends[1]

    def log2_at(self, value: float) -> float:
        """The line's log2 η* at ``value`` (tokens or batch rows)."""
        return self.intercept + self.slope * math.log2(value)

    def at_budget(self, budget: Any) -> float:
        """:meth:`log2_at` the ``budget``'s tokens or batch (a :class:`~hptransfer.budget.
        Horizon`)."""
        return self.log2_at(getattr(budget, self.axis))

    def interval(self, value: float) -> tuple[float, float] | None:
        """95% interval of :meth:`log2_at` from the replicate lines (normal approximation)."""
        if self.cov is None:
            return None
        x = math.log2(value)
        (vaa, vas), (_, vss) = self.cov
        se = math.sqrt(max(vaa + x * x * vss + 2 * x * vas, 0.0))
        at = self.log2_at(value)
        return at - Z_975 * se, at + Z_975 * se

    def to_json(self) -> dict[str, Any]:
        """fit.json's record: the exponent (``gamma`` or ``beta``), its interval, and the
        covariance of (intercept, exponent)."""
        name, sign = EXPONENTS[self.axis]
        ci = self.exponent_ci95
        cov = None if self.cov is None else _signed(self.cov, sign)
        return {
            "axis": self.axis,
            name: self.exponent,
            "ci95": None if ci is None else list(ci),
            "intercept": self.intercept,
            "cov": None if cov is None else [list(row) for row in cov],
            "residual_octaves": self.residual_octaves,
            "n_located": self.n_located,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> BudgetLine:
        axis = doc.get("axis", TOKENS)  # fits before batch lines: horizon lines only
        name, sign = EXPONENTS[axis]
        ci, cov = doc["ci95"], doc["cov"]
        return cls(
            axis=axis,
            slope=sign * float(doc[name]),
            ci95=None if ci is None else tuple(sorted((sign * ci[0], sign * ci[1]))),
            intercept=float(doc["intercept"]),
            cov=None
            if cov is None
            else _signed(((cov[0][0], cov[0][1]), (cov[1][0], cov[1][1])), sign),
            residual_octaves=float(doc["residual_octaves"]),
            n_located=int(doc["n_located"]),
        )


def line_axis(record: dict[str, Any]) -> str:
    """The axis of a fit.json ``budget`` record (tokens when it names none)."""
    return str(record.get("axis", TOKENS))


def _signed(cov: Any, sign: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """The covariance of (a, sign·s) from that of (a, s)."""
    (vaa, vas), (_, vss) = cov
    return (float(vaa), sign * float(vas)), (sign * float(vas), float(vss))


def line(log2_x: np.ndarray, log2_optima: np.ndarray) -> tuple[float, float]:
    """Least-squares (intercept, slope) of log2 η* = intercept + slope·log2 x."""
    slope, intercept = np.polyfit(log2_x, log2_optima, 1)
    return float(intercept), float(slope)


def fit_line(
    grids: list[BudgetGrid],
    axis: str,
    window: float,
    cliff: float,
    n_boot: int,
    rng: np.random.Generator,
) -> BudgetLine:
    """The line along ``axis`` through ``grids``' optima (at least :data:`MIN_POINTS`), with
    its slope's interval."""
    x = np.log2([getattr(g, axis) for g in grids])
    y = np.array([g.log2 for g in grids])
    intercept, slope = line(x, y)
    residual = float(np.max(np.abs(y - (intercept + slope * x))))
    replicates = _replicates(grids, window, cliff, n_boot, rng)
    located = replicates[:, ~np.isnan(replicates).any(axis=0)]
    if located.shape[1] < 2:
        return BudgetLine(axis, slope, None, intercept, None, residual, located.shape[1])
    lines = np.array([line(x, column) for column in located.T])
    q_lo, q_hi = np.percentile(lines[:, 1], [100 * TAIL, 100 * (1 - TAIL)])
    widen = small_sample_factor(max(2, min(g.losses.shape[0] for g in grids)))
    ci95 = (slope - widen * max(slope - q_lo, 0.0), slope + widen * max(q_hi - slope, 0.0))
    cov = np.cov(lines.T) * widen**2
    return BudgetLine(
        axis,
        slope,
        ci95,
        intercept,
        ((cov[0, 0], cov[0, 1]), (cov[1, 0], cov[1, 1])),
        residual,
        located.shape[1],
    )


def _replicates(
    grids: list[BudgetGrid], window: float, cliff: float, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """``[budget, replicate]`` log2 optima: each budget's seed bootstrap; a budget with one
    seed has none, so it borrows the others' noise (normal draws around its optimum with the
    median standard deviation of the other budgets' replicates). All NaN when no budget
    has two seeds."""
    out = np.full((len(grids), n_boot), np.nan)
    single = [g.losses.shape[0] < 2 for g in grids]
    for k, g in enumerate(grids):
        if not single[k]:
            out[k] = bootstrap(g.x, g.losses, window, cliff, n_boot, rng)
    spreads = [np.nanstd(out[k]) for k in range(len(grids)) if not single[k]]
    if not spreads:
        return out
    sigma = float(np.median(spreads))
    for k, g in enumerate(grids):
        if single[k]:
            out[k] = rng.normal(g.log2, sigma, n_boot)
    return out


# ---------------------------------------------------------------------------- held-out check


def holdout_table(study: Fit, held_out: Fit) -> pd.DataFrame:
    """Per group of ``study`` (a sweep over horizons or batch sizes) that ``held_out`` (a
    sweep at a budget beyond them) also has: the exponent with its interval, and the LR
    optimum at the held-out budget predicted by both budget rules against the one measured
    there (error in octaves, predicted − measured). ``fitted`` extrapolates the study's line;
    ``completedp`` moves the optimum of the study's budget nearest the held-out one (in log2
    along the line's axis) by its η factor, √(m_B/m_D)."""
    budget = held_out.horizon
    rows = []
    for record in study.budget:
        key = {a: record[a] for a in ("parameterization", "width", "density") if a in record}
        measured = _optimum(held_out, key)
        if measured is None:
            continue
        fit = BudgetLine.from_json(record)
        x = budget[fit.axis]
        near = min(record["horizons"], key=lambda h: abs(math.log2(h[fit.axis] / x)))
        m = BudgetMultipliers(
            tokens=budget["tokens"] / near["tokens"],
            batch=budget["batch"] / (near.get("batch") or study.horizon["batch"]),
        )
        fitted, completedp = fit.log2_at(x), near["log2"] + math.log2(COMPLETEDP.lr(m))
        rows.append(
            {
                **key,
                "axis": fit.axis,
                "exponent": fit.exponent,
                "exponent_ci95": fit.exponent_ci95,
                "residual_octaves": fit.residual_octaves,
                "budgets": [h[fit.axis] for h in record["horizons"]],
                "held_out": x,
                "held_out_steps": budget["steps"],
                "measured_log2": measured["log2"],
                "measured_flag": measured["flag"],
                "measured_seeds": measured["n_seeds"],
                "fitted_log2": fitted,
                "fitted_ci95": fit.interval(x),
                "fitted_error": fitted - measured["log2"],
                "completedp_log2": completedp,
                "completedp_error": completedp - measured["log2"],
            }
        )
    return pd.DataFrame(rows)


def _optimum(fit: Fit, key: dict[str, Any]) -> dict[str, Any] | None:
    """``fit``'s LR optimum of the group ``key`` (None when it has none)."""
    optima = fit.optima[fit.optima["hp"].eq("lr")]
    for axis, value in key.items():
        optima = optima[optima[axis].astype(str).eq(str(value))]
    return None if optima.empty else optima.iloc[0].to_dict()


def markdown(table: pd.DataFrame) -> str:
    """The held-out table for the results README (log2 η*, octaves)."""
    symbol = SYMBOLS[table["axis"].iloc[0]][0] if len(table) else "γ"
    lines = [
        f"| density | {symbol} [95% CI] | measured log2 η* | fitted rule | error | completedp "
        "| error |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        ci = "-" if r.exponent_ci95 is None else _pair(r.exponent_ci95)
        fitted_ci = "" if r.fitted_ci95 is None else f" {_pair(r.fitted_ci95)}"
        flag = "" if r.measured_flag == "ok" else f" ({r.measured_flag})"
        lines.append(
            f"| {r.density:g} | {r.exponent:.2f} {ci} | {r.measured_log2:.2f}{flag}, "
            f"{r.measured_seeds} seed(s) | {r.fitted_log2:.2f}{fitted_ci} | "
            f"{r.fitted_error:+.2f} | {r.completedp_log2:.2f} | {r.completedp_error:+.2f} |"
        )
    return "\n".join(lines)


def _pair(ends: tuple[float, float]) -> str:
    return f"[{ends[0]:.2f}, {ends[1]:.2f}]"
