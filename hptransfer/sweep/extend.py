"""Growing a grid past its edge optima: ``search.auto_extend`` / ``sweep --auto-extend``.

After the sweep every (group, searched HP) is fitted (by the caller's ``optima``, the fit of
:mod:`hptransfer.analysis.fit`: the sweep does not import the analysis).
Where the grid arg-min of a searched HP is its grid's lowest or highest value (or beyond it:
a slice reaches past the grid), that end moves out by one step and the new runs are trained:
a ``log2_range`` by its ``step``, a ``values`` list by the ratio of its two outermost positive
values (a log2 step too; the fit, in log2, leaves a value 0 out). This repeats until no
optimum sits on an edge or ``max_rounds`` rounds were added, so a study reports no edge
optimum unless the bound stopped it. Each round says what it added. The runs added are the new grid
face for every cell (a grid is one cross product): a round costs cells × seeds × the
product of the other HPs' value counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TextIO

import numpy as np
import pandas as pd

from hptransfer.errors import ConfigError
from hptransfer.sweep.parse import parse_spec, parse_text
from hptransfer.sweep.spec import HPRange, SweepSpec

MAX_ROUNDS = 4  # the default bound: e.g. 2 octaves past a half-octave range on each side
SIDES = ("low", "high")


def edge_sides(spec: SweepSpec, optima: pd.DataFrame) -> dict[str, set[str]]:
    """Per searched grid HP, the ends (``low``/``high``) some group's grid arg-min sits on
    (or past); ``optima``: one row per group and HP, with ``hp`` and ``argmin_log2``."""
    sides: dict[str, set[str]] = {}
    for hp in spec.search.space:
        positive = _positive(hp)
        if len(positive) < 2 or hp.name not in set(optima["hp"]):
            continue
        argmins = optima.loc[optima["hp"].eq(hp.name), "argmin_log2"].to_numpy(float)
        low, high = math.log2(positive[0]), math.log2(positive[-1])
        found = {"low"} if (argmins <= low + 1e-9).any() else set()
        found |= {"high"} if (argmins >= high - 1e-9).any() else set()
        if found:
            sides[hp.name] = found
    return sides


def extended(spec: SweepSpec, sides: dict[str, set[str]]) -> SweepSpec:
    """``spec`` with each named HP one step wider at the given ends (see the module doc)."""

    def widen(hp: HPRange) -> dict[str, Any] | None:
        ends = sides.get(hp.name, set())
        if not ends:
            return None
        if hp.log2_range is not None:
            lo, hi, step = *hp.log2_range, hp.step
            last = lo + step * math.floor((hi - lo) / step + 1e-9)
            pair = [lo - step if "low" in ends else lo, last + step if "high" in ends else hi]
            return {"log2_range": pair, "step": step}
        ordered = _positive(hp)
        low = [_round(ordered[0] ** 2 / ordered[1])] if "low" in ends else []
        high = [_round(ordered[-1] ** 2 / ordered[-2])] if "high" in ends else []
        values = [*low, *hp.values, *high]
        return {"values": sorted(values) if list(hp.values) == sorted(hp.values) else values}

    return _with_space(spec, widen)


def covering(spec: SweepSpec, stored: str | None) -> SweepSpec:
    """``spec`` widened to the ranges of the stored spec text (a ``log2_range`` with the same
    step, a ``values`` list holding all of ``spec``'s), so a re-run of the written spec
    resumes an auto-extended sweep instead of refusing it."""
    if stored is None:
        return spec
    try:
        old = {hp.name: hp for hp in parse_text(stored, source="spec.yaml").search.space}
    except ConfigError:
        return spec  # an unusable stored spec: the sweep itself says so

    def union(hp: HPRange) -> dict[str, Any] | None:
        prev = old.get(hp.name)
        if prev is None or (prev.log2_range is None) != (hp.log2_range is None):
            return None
        if hp.log2_range is None:
            return {"values": list(prev.values)} if set(hp.values) <= set(prev.values) else None
        if prev.step != hp.step:
            return None
        lo, hi = hp.log2_range
        pair = [min(lo, prev.log2_range[0]), max(hi, prev.log2_range[1])]
        return {"log2_range": pair, "step": hp.step}

    return _with_space(spec, union)


def _with_space(spec: SweepSpec, change: Callable[[HPRange], dict[str, Any] | None]) -> SweepSpec:
    doc = spec.to_dict()
    for hp in spec.search.space:
        if (new := change(hp)) is not None:
            doc["search"]["space"][hp.name] = new
    return parse_spec(doc, source=f"{spec.name} (auto-extended)")


def auto_extend(
    spec: SweepSpec,
    run: Callable[[SweepSpec], pd.DataFrame],
    optima: Callable[[pd.DataFrame], pd.DataFrame],
    out: TextIO,
    max_rounds: int = MAX_ROUNDS,
) -> tuple[SweepSpec, pd.DataFrame]:
    """Run ``spec`` (``run`` trains what is missing and returns every stored trial), then
    widen it past edge optima (``optima`` fits the trials) and run again, at most
    ``max_rounds`` times. Returns the last spec and its trials; says on ``out`` what each
    round added and, if it grew, how it ended (optima inside, or why not)."""
    trials = run(spec)
    for round_ in range(1, max_rounds + 1):
        sides = edge_sides(spec, optima(trials))
        if not sides:
            _say_end(spec, trials, sides, round_ - 1, out)
            return spec, trials
        grown = extended(spec, sides)
        print(f"auto-extend round {round_}/{max_rounds}: {_added(spec, grown, sides)}", file=out)
        spec, trials = grown, run(grown)
    _say_end(spec, trials, edge_sides(spec, optima(trials)), max_rounds, out)
    return spec, trials


def _added(before: SweepSpec, after: SweepSpec, sides: dict[str, set[str]]) -> str:
    """``lr (high): added 2^-4; now lr 2^-9..2^-4, ...``."""
    old = {hp.name: set(hp.values) for hp in before.search.space}
    parts = []
    for hp in after.search.space:
        new = sorted(set(hp.values) - old[hp.name])
        if new:
            ends = "/".join(s for s in SIDES if s in sides[hp.name])
            parts.append(f"{hp.name} ({ends} end) {', '.join(_show(hp, v) for v in new)}")
    return f"optimum on the grid's edge; added {'; '.join(parts)}; now {_ranges(after)}"


def _say_end(
    spec: SweepSpec,
    trials: pd.DataFrame,
    sides: dict[str, set[str]],
    rounds: int,
    out: TextIO,
) -> None:
    """One line: where the optima ended (silent when nothing was ever on an edge)."""
    if not sides and rounds == 0:
        return
    where = ", ".join(f"{k} ({'/'.join(s for s in SIDES if s in v)})" for k, v in sides.items())
    verdict = (
        f"stopped: optima still on the edge: {where}; run the same command again to go on "
        "(or raise search.auto_extend)"
        if sides
        else "every optimum inside the grid"
    )
    notes = "".join(f"; {note}" for note in _diverged_ends(spec, trials))
    head = f"auto-extend: after {rounds} round{'s' * (rounds != 1)}"
    print(f"{head}, {verdict}{notes} ({_ranges(spec)})", file=out)


def _diverged_ends(spec: SweepSpec, trials: pd.DataFrame) -> list[str]:
    """For each grid end where every run diverged: the optimum can go no further that way."""
    notes = []
    for hp in spec.search.space:
        if hp.name not in trials or len(hp.values) < 2:
            continue
        for side, value in zip(SIDES, (min(hp.values), max(hp.values)), strict=True):
            at = trials[np.isclose(trials[hp.name].astype(float), value)]
            if len(at) and at["diverged"].astype(bool).all():
                notes.append(f"every run at {hp.name} {_show(hp, value)} ({side} end) diverged")
    return notes


def _ranges(spec: SweepSpec) -> str:
    return ", ".join(
        f"{hp.name} {_show(hp, min(hp.values))}..{_show(hp, max(hp.values))}"
        for hp in spec.search.space
        if len(hp.values) > 1
    )


def _show(hp: HPRange, value: float) -> str:
    return f"2^{math.log2(value):g}" if hp.log2_range is not None else f"{value:.4g}"


def _positive(hp: HPRange) -> list[float]:
    """The HP's positive grid values, in increasing order (what the fit sees in log2)."""
    return sorted(v for v in hp.values if v > 0)


def _round(value: float) -> float:
    """A grown value to 12 significant digits (0.04² / 0.08 is 0.02, not 0.019999...)."""
    return float(f"{value:.12g}")
