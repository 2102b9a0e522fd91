"""A fit as readable tables: the optima, the joint optima, the budget lines and the drift
(what ``hptransfer fit`` prints)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from hptransfer.analysis.fit.document import Fit
from hptransfer.analysis.horizon import EXPONENTS, SYMBOLS, TOKENS, line_axis


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
