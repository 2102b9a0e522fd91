"""Growing a grid past its edge optima: ``hptransfer sweep SPEC --auto-extend``.

After the sweep every (group, searched HP) is fitted (:mod:`hptransfer.analysis.fit`).
Where the grid arg-min of a ``log2_range`` HP is the range's first or last value, that end
moves out by one step of the range (half an octave by default) and the new runs are trained;
this repeats until no optimum sits on an edge or ``max_rounds`` steps were added, so a study
reports no edge optimum unless the bound stopped it. HPs given as ``values`` lists are never
extended. The runs added are the new grid column for every cell (a grid is one cross
product): each round costs cells × seeds runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TextIO

import numpy as np
import pandas as pd
import yaml

from hptransfer.errors import ConfigError
from hptransfer.sweep.spec import SweepSpec, parse_spec

MAX_ROUNDS = 4  # at most 2 octaves past the written range on each side, at half-octave steps


def edge_sides(spec: SweepSpec, trials: pd.DataFrame) -> dict[str, set[str]]:
    """Per ``log2_range`` HP, the ends (``low``/``high``) some group's grid arg-min sits on."""
    from hptransfer.analysis.fit import FitSettings, fit_optima

    optima = fit_optima(trials, FitSettings(n_boot=1))
    sides: dict[str, set[str]] = {}
    for hp in spec.search.space:
        if hp.log2_range is None or hp.name not in set(optima["hp"]):
            continue
        argmins = optima.loc[optima["hp"].eq(hp.name), "argmin_log2"].to_numpy(float)
        ends = {"low": math.log2(hp.values[0]), "high": math.log2(hp.values[-1])}
        found = {side for side, end in ends.items() if np.isclose(argmins, end).any()}
        if found:
            sides[hp.name] = found
    return sides


def extended(spec: SweepSpec, sides: dict[str, set[str]]) -> SweepSpec:
    """``spec`` with each named ``log2_range`` one step wider at the given ends."""

    def widen(name: str, lo: float, hi: float, step: float) -> list[float]:
        last = lo + step * math.floor((hi - lo) / step + 1e-9)
        return [
            lo - step if "low" in sides.get(name, ()) else lo,
            last + step if "high" in sides.get(name, ()) else hi,
        ]

    return _with_ranges(spec, widen)


def covering(spec: SweepSpec, stored: str | None) -> SweepSpec:
    """``spec`` widened to the ``log2_range`` ends of the stored spec text (same step), so a
    re-run of the written spec resumes an auto-extended sweep instead of refusing it."""
    try:
        old = {hp.name: hp for hp in parse_spec(yaml.safe_load(stored)).search.space}
    except (ConfigError, yaml.YAMLError, AttributeError):
        return spec  # no stored spec, or an unusable one: the sweep itself says so

    def union(name: str, lo: float, hi: float, step: float) -> list[float]:
        prev = old.get(name)
        if prev is None or prev.log2_range is None or prev.step != step:
            return [lo, hi]
        return [min(lo, prev.log2_range[0]), max(hi, prev.log2_range[1])]

    return _with_ranges(spec, union)


def _with_ranges(spec: SweepSpec, change: Callable[..., list[float]]) -> SweepSpec:
    doc = spec.to_dict()
    for hp in spec.search.space:
        if hp.log2_range is not None:
            lo, hi = hp.log2_range
            doc["search"]["space"][hp.name]["log2_range"] = change(hp.name, lo, hi, hp.step)
    return parse_spec(doc, source=f"{spec.name} (auto-extended)")


def auto_extend(
    spec: SweepSpec,
    run: Callable[[SweepSpec], pd.DataFrame],
    out: TextIO,
    max_rounds: int = MAX_ROUNDS,
) -> tuple[SweepSpec, pd.DataFrame]:
    """Run ``spec`` (``run`` trains what is missing and returns every stored trial), then
    widen it past edge optima and run again, at most ``max_rounds`` times. Returns the last
    spec and its trials; says on ``out`` what was added and whether edges remain."""
    trials = run(spec)
    for _ in range(max_rounds):
        sides = edge_sides(spec, trials)
        if not sides:
            return spec, trials
        spec = extended(spec, sides)
        print(f"auto-extend: optimum on the grid's edge; now {_ranges(spec)}", file=out)
        trials = run(spec)
    if edge_sides(spec, trials):
        print(
            f"auto-extend: stopped after {max_rounds} steps per side ({_ranges(spec)}); "
            "optima still on the edge: run the same command again to go on",
            file=out,
        )
    return spec, trials


def _ranges(spec: SweepSpec) -> str:
    return ", ".join(
        f"{hp.name} 2^{hp.log2_range[0]:g}..2^{math.log2(hp.values[-1]):g}"
        for hp in spec.search.space
        if hp.log2_range is not None
    )
