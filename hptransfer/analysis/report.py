"""Markdown tables of fitted optima, regenerated in place inside a README.

A table is a marked block; everything between the two markers is rewritten from the
fit.json of the sweep folder it names, relative to the README's folder (``.``: the study's own
folder, ``../lr_vs_width_8x``: another study's)::

    <!-- fit . rows=density hp=lr -->
    ...generated...
    <!-- /fit -->

``rows`` is the group axis down the table (density, width or depth), ``hp`` the HP (default: the
first searched one); any other ``axis=value`` keeps only those groups (``density=1``).
Columns are the parameterizations. A cell is the fitted optimum, the grid arg-min in
parentheses and the 95% interval in log2 units (``<``/``>``: cut at the stable grid's end;
"grid limits" when cut at both), then the flag unless ``ok``. Under the table, the drift over
its rows of the fitted optima and of the grid arg-mins. Run (every study's write-up without
arguments)::

    python -m hptransfer.cli.report results/lr_vs_density/README.md

:func:`holdout_report` is ``python -m hptransfer.cli.holdout``'s table: how well a study's
fitted budget lines predict a held-back budget.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import pandas as pd

from hptransfer.analysis.fit import interval, load_fit
from hptransfer.analysis.horizon import holdout_table, markdown
from hptransfer.param import param_label, param_order
from hptransfer.store import write_text

BLOCK = re.compile(r"(<!-- fit (?P<args>[^>]*?) -->\n)(?P<body>.*?)(<!-- /fit -->)", re.S)


def render(results: Path, args: str) -> str:
    """The markdown of one block, from the fit.json of the folder ``results / <sweep>``."""
    sweep, *options = args.split()
    settings = dict(option.split("=", 1) for option in options)
    fit = load_fit(results / sweep)
    rows_axis = settings.pop("rows", "density")
    hp = settings.pop("hp", fit.searched_hps[0])
    optima = fit.optima[fit.optima["hp"].eq(hp)]
    for axis, value in settings.items():
        optima = optima[optima[axis].astype(float).eq(float(Fraction(value)))]
    params = param_order(optima["parameterization"])
    values = sorted(optima[rows_axis].unique(), reverse=rows_axis == "density")
    lines = [
        f"| {rows_axis} | " + " | ".join(param_label(p) for p in params) + " |",
        "|---" * (len(params) + 1) + "|",
    ]
    for value in values:
        at = optima[optima[rows_axis].eq(value)].set_index("parameterization")
        cells = [_cell(at.loc[p]) if p in at.index else "—" for p in params]
        lines.append(f"| {_axis_value(value)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + _drift(optima, params, rows_axis, values) + "\n"


def _cell(row: pd.Series) -> str:
    text = f"2^{row.log2:.2f} (2^{row.argmin_log2:g})"
    if pd.notna(row.ci95_lo):  # None in fit.json when a fit has no interval (1 seed)
        lo, hi = math.log2(row.ci95_lo), math.log2(row.ci95_hi)
        text += " " + interval(lo, hi, row.ci95_cut, "{:.1f}")
    return text if row.flag == "ok" else f"{text} *{row.flag}*"


def _axis_value(value: float) -> str:
    return f"1/{round(1 / value)}" if 0 < value < 1 else f"{value:g}"


def _drift(optima: pd.DataFrame, params: list[str], axis: str, values: list[float]) -> str:
    if len(values) < 2:
        return ""
    parts = []
    for p in params:
        rows = optima[optima["parameterization"].eq(p)]
        if len(rows) > 1:
            fitted = rows["log2"].max() - rows["log2"].min()
            grid = rows["argmin_log2"].max() - rows["argmin_log2"].min()
            parts.append(f"{param_label(p)} {fitted:.2f} / {grid:.2f}")
    span = f"{_axis_value(values[0])} → {_axis_value(values[-1])}"
    head = f"Drift (max − min over {axis} {span}), fitted / grid arg-min, octaves: "
    return head + ", ".join(parts) + "."


def regenerate(readme: Path, results: Path | None = None) -> int:
    """Rewrite every fit block of ``readme``; the number of blocks."""
    results = results or readme.parent
    text = readme.read_text()
    blocks = list(BLOCK.finditer(text))
    new = BLOCK.sub(lambda m: m.group(1) + render(results, m.group("args")) + m.group(4), text)
    if new != text:
        write_text(readme, new)
    return len(blocks)


def regenerate_all(readmes: Sequence[str] = ()) -> dict[str, int]:
    """:func:`regenerate` each README (default: every study's write-up, ``results/*/README.md``);
    the number of blocks of each."""
    names = readmes or sorted(map(str, Path("results").glob("*/README.md")))
    return {name: regenerate(Path(name)) for name in names}


def holdout_report(study: Path, held_back: Path) -> str:
    """The held-out table of ``study``'s fitted budget lines at ``held_back``'s budget
    (:func:`~hptransfer.analysis.horizon.holdout_table`), written as ``study/holdout.json``;
    the table as markdown."""
    table = holdout_table(load_fit(study), load_fit(held_back))
    write_text(study / "holdout.json", table.to_json(orient="records", indent=1) + "\n")
    return markdown(table)
