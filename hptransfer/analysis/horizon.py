"""How the optimal learning rate moves with the training horizon: log2 η*(D) = a − γ·log2 D.

A sweep over several horizons (``train.steps: [..]``) has one LR optimum per horizon and
group (:mod:`hptransfer.analysis.fit` locates each, with its seed bootstrap). This module
fits a line through them in (log2 tokens, log2 η*) per group: γ is the exponent of
η* ∝ D^-γ (Bjorck et al., ICLR 2025), and the line extrapolated to a target's tokens is
``budget_rule: fitted`` (:mod:`hptransfer.budget`).

The interval reuses the optimum's bootstrap: each horizon's seeds are resampled
(:func:`~hptransfer.analysis.optimum.bootstrap`), replicate ``r`` of every horizon gives one
line, and γ's 95% interval is the percentile interval of those lines' slopes, widened like
the optimum's (``small_sample_factor`` of the fewest seeds). It carries the seed noise of the
optima, not a misfit of the power law: with three horizons the line has one degree of
freedom, and ``residual_octaves`` (the largest distance of an optimum from the line) says
how straight the three points are. The replicate lines' covariance of (a, γ) gives the
interval of a prediction (:meth:`HorizonFit.interval`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hptransfer.analysis.optimum import TAIL, Z_975, bootstrap, small_sample_factor

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
    seeds = min(g.losses.shape[0] for g in grids)
    if seeds < 2:
        return HorizonFit(gamma, None, intercept, None, residual, 0)
    replicates = np.stack([bootstrap(g.x, g.losses, window, cliff, n_boot, rng) for g in grids])
    located = replicates[:, ~np.isnan(replicates).any(axis=0)]
    if located.shape[1] < 2:
        return HorizonFit(gamma, None, intercept, None, residual, located.shape[1])
    lines = np.array([line(x, column) for column in located.T])
    q_lo, q_hi = np.percentile(lines[:, 1], [100 * TAIL, 100 * (1 - TAIL)])
    widen = small_sample_factor(seeds)
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
