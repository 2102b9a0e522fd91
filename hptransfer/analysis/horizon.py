"""How the optimal learning rate moves with the training horizon: log2 η*(D) = a − γ·log2 D.

A sweep over several horizons (``train.steps: [..]``) has one LR optimum per horizon and
group (:mod:`hptransfer.analysis.fit` locates each, with its seed bootstrap). This module
fits a line through them in (log2 tokens, log2 η*) per group: γ is the exponent of
η* ∝ D^-γ (Bjorck et al., ICLR 2025), and the line extrapolated to a target's tokens is
``budget_rule: fitted`` (:mod:`hptransfer.budget`).

The interval reuses the optimum's bootstrap: each horizon's seeds are resampled
(:func:`~hptransfer.analysis.optimum.bootstrap`), replicate ``r`` of every horizon gives one
line, and γ's 95% interval is the percentile interval of those lines' slopes, widened like
the optimum's (``small_sample_factor`` of the fewest seeds, at least 2). A horizon trained
with one seed (long horizons are costly) borrows the seed noise of the others: its
replicates are normal around its optimum with their median spread. It carries the seed noise of the
optima, not a misfit of the power law: with three horizons the line has one degree of
freedom, and ``residual_octaves`` (the largest distance of an optimum from the line) says
how straight the three points are. The replicate lines' covariance of (a, γ) gives the
interval of a prediction (:meth:`HorizonFit.interval`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hptransfer.analysis.optimum import TAIL, Z_975, bootstrap, small_sample_factor

if TYPE_CHECKING:
    from hptransfer.analysis.fit import Fit

MIN_HORIZONS = 3  # a line and one degree of freedom to see its misfit


@dataclass(frozen=True)
class HorizonGrid:
    """One horizon of one group (``key``: its axis values): its tokens, the located optimum
    (log2), flag and interval, and the seed × grid-point losses it was located on (``x``:
    the grid's log2 values)."""

    key: dict[str, Any]
    steps: int
    tokens: int
    log2: float
    flag: str
    ci95: tuple[float, float] | None
    x: np.ndarray
    losses: np.ndarray

    def record(self) -> dict[str, Any]:
        """fit.json's entry of this horizon."""
        return {
            "steps": self.steps,
            "tokens": self.tokens,
            "log2": self.log2,
            "flag": self.flag,
            "ci95_log2": None if self.ci95 is None else list(self.ci95),
            "n_seeds": int(self.losses.shape[0]),
        }


@dataclass(frozen=True)
class HorizonFit:
    """The line log2 η*(D) = ``intercept`` − ``gamma``·log2 D of one group."""

    gamma: float
    ci95: tuple[float, float] | None
    intercept: float
    cov: tuple[tuple[float, float], tuple[float, float]] | None  # of (intercept, gamma)
    residual_octaves: float
    n_located: int  # bootstrap replicates that located every horizon's optimum

    def log2_at(self, tokens: float) -> float:
        """The line's log2 η* at ``tokens``."""
        return self.intercept - self.gamma * math.log2(tokens)

    def interval(self, tokens: float) -> tuple[float, float] | None:
        """95% interval of :meth:`log2_at` from the replicate lines (normal approximation)."""
        if self.cov is None:
            return None
        x = math.log2(tokens)
        (vaa, vag), (_, vgg) = self.cov
        se = math.sqrt(max(vaa + x * x * vgg - 2 * x * vag, 0.0))
        at = self.log2_at(tokens)
        return at - Z_975 * se, at + Z_975 * se

    def to_json(self) -> dict[str, Any]:
        return {
            "gamma": self.gamma,
            "ci95": None if self.ci95 is None else list(self.ci95),
            "intercept": self.intercept,
            "cov": None if self.cov is None else [list(row) for row in self.cov],
            "residual_octaves": self.residual_octaves,
            "n_located": self.n_located,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> HorizonFit:
        cov = doc["cov"]
        return cls(
            gamma=float(doc["gamma"]),
            ci95=None if doc["ci95"] is None else (float(doc["ci95"][0]), float(doc["ci95"][1])),
            intercept=float(doc["intercept"]),
            cov=None if cov is None else ((cov[0][0], cov[0][1]), (cov[1][0], cov[1][1])),
            residual_octaves=float(doc["residual_octaves"]),
            n_located=int(doc["n_located"]),
        )


def line(log2_tokens: np.ndarray, log2_optima: np.ndarray) -> tuple[float, float]:
    """Least-squares (intercept, γ) of log2 η* = intercept − γ·log2 D."""
    slope, intercept = np.polyfit(log2_tokens, log2_optima, 1)
    return float(intercept), float(-slope)


def fit_horizon(
    grids: list[HorizonGrid], window: float, cliff: float, n_boot: int, rng: np.random.Generator
) -> HorizonFit:
    """The line through ``grids``' optima (at least :data:`MIN_HORIZONS`), with γ's interval."""
    x = np.log2([g.tokens for g in grids])
    y = np.array([g.log2 for g in grids])
    intercept, gamma = line(x, y)
    residual = float(np.max(np.abs(y - (intercept - gamma * x))))
    replicates = _replicates(grids, window, cliff, n_boot, rng)
    located = replicates[:, ~np.isnan(replicates).any(axis=0)]
    if located.shape[1] < 2:
        return HorizonFit(gamma, None, intercept, None, residual, located.shape[1])
    lines = np.array([line(x, column) for column in located.T])
    q_lo, q_hi = np.percentile(lines[:, 1], [100 * TAIL, 100 * (1 - TAIL)])
    widen = small_sample_factor(max(2, min(g.losses.shape[0] for g in grids)))
    ci95 = (gamma - widen * max(gamma - q_lo, 0.0), gamma + widen * max(q_hi - gamma, 0.0))
    cov = np.cov(lines.T) * widen**2
    return HorizonFit(
        gamma,
        ci95,
        intercept,
        ((cov[0, 0], cov[0, 1]), (cov[1, 0], cov[1, 1])),
        residual,
        located.shape[1],
    )


def _replicates(
    grids: list[HorizonGrid], window: float, cliff: float, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """``[horizon, replicate]`` log2 optima: each horizon's seed bootstrap; a horizon with one
    seed has none, so it borrows the others' noise (normal draws around its optimum with the
    median standard deviation of the other horizons' replicates). All NaN when no horizon
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
    """Per group of ``study`` (a sweep over horizons) that ``held_out`` (a sweep at a longer
    horizon) also has: γ with its interval, and the LR optimum at the held-out horizon
    predicted by both budget rules against the one measured there (error in octaves,
    predicted − measured). ``fitted`` extrapolates the η*(D) line; ``completedp`` moves the
    optimum of the study's longest horizon by √(m_B/m_D) (the same batch: m_D alone)."""
    tokens = held_out.horizon["tokens"]
    rows = []
    for record in study.budget:
        key = {a: record[a] for a in ("parameterization", "width", "density") if a in record}
        measured = _optimum(held_out, key)
        if measured is None:
            continue
        line = HorizonFit.from_json(record)
        longest = record["horizons"][-1]
        fitted, completedp = (
            line.log2_at(tokens),
            longest["log2"] - 0.5 * math.log2(tokens / longest["tokens"]),
        )
        ci = line.interval(tokens)
        rows.append(
            {
                **key,
                "gamma": line.gamma,
                "gamma_ci95": line.ci95,
                "residual_octaves": line.residual_octaves,
                "horizons": [h["steps"] for h in record["horizons"]],
                "held_out_steps": held_out.horizon["steps"],
                "measured_log2": measured["log2"],
                "measured_flag": measured["flag"],
                "measured_seeds": measured["n_seeds"],
                "fitted_log2": fitted,
                "fitted_ci95": ci,
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


def main(argv: list[str] | None = None) -> int:
    """``python -m hptransfer.analysis.horizon results/<study> results/<held-out>``: the
    held-out table as markdown, and as ``holdout.json`` in the study's folder."""
    import sys
    from pathlib import Path

    from hptransfer.analysis.fit import load_fit
    from hptransfer.store import write_text

    study_dir, held_dir = (Path(a) for a in (argv or sys.argv[1:]))
    table = holdout_table(load_fit(study_dir), load_fit(held_dir))
    write_text(study_dir / "holdout.json", table.to_json(orient="records", indent=1) + "\n")
    print(markdown(table))
    return 0


def markdown(table: pd.DataFrame) -> str:
    """The held-out table for the results README (log2 η*, octaves)."""
    lines = [
        "| density | γ [95% CI] | measured log2 η* | fitted rule | error | completedp | error |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        ci = "-" if r.gamma_ci95 is None else f"[{r.gamma_ci95[0]:.2f}, {r.gamma_ci95[1]:.2f}]"
        fitted_ci = (
            "" if r.fitted_ci95 is None else (f" [{r.fitted_ci95[0]:.2f}, {r.fitted_ci95[1]:.2f}]")
        )
        flag = "" if r.measured_flag == "ok" else f" ({r.measured_flag})"
        lines.append(
            f"| {r.density:g} | {r.gamma:.2f} {ci} | {r.measured_log2:.2f}{flag}, "
            f"{r.measured_seeds} seed(s) | {r.fitted_log2:.2f}{fitted_ci} | "
            f"{r.fitted_error:+.2f} | {r.completedp_log2:.2f} | {r.completedp_error:+.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
