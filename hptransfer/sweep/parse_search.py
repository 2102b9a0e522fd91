"""The ``search:`` section of a sweep spec: the searched HPs, how they are searched, the
slice after the search; and the checks a search needs from the rest of the spec."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from hptransfer.param import BaseHPs
from hptransfer.quadratic import needed_points
from hptransfer.sweep.fields import FieldReader, field_names
from hptransfer.sweep.spec import HPRange, SearchSpec, SliceSpec, SweepSpec

ALGORITHMS = ("grid", "optuna")
SAMPLERS = ("tpe", "gp", "cmaes", "random")
# A grid is listed in full before it runs: beyond this many runs it is a typo, not a plan.
MAX_GRID_RUNS = 100_000
MAX_EXTEND_ROUNDS = 16  # search.auto_extend: each round adds a grid face


def parse_search(reader: FieldReader, raw: Any) -> SearchSpec:
    """The search section (absent: the defaults, which still need a ``space``)."""
    section = reader.mapping("search", raw if raw is not None else {}, field_names(SearchSpec))
    space_raw = reader.mapping("search.space", section.get("space") or {}, BaseHPs.names())
    if not space_raw:
        reader.fail(
            "search.space",
            "is empty: give at least one HP to search, e.g. lr: {log2_range: [-10, -4]}",
        )
    space = tuple(_hp_range(reader, name, value) for name, value in space_raw.items())
    rest = {k: v for k, v in section.items() if k not in ("space", "slice")}
    cut = None if section.get("slice") is None else _slice(reader, section["slice"], space)
    search = reader.build("search", SearchSpec, rest, space=space, slice=cut)
    if search.algorithm not in ALGORITHMS:
        reader.fail("search.algorithm", f"must be one of {', '.join(ALGORITHMS)}")
    if search.sampler not in SAMPLERS:
        reader.fail("search.sampler", f"must be one of {', '.join(SAMPLERS)}")
    if search.num_samples < 1:
        reader.fail("search.num_samples", "must be >= 1")
    if not 0 <= search.auto_extend <= MAX_EXTEND_ROUNDS:
        reader.fail("search.auto_extend", f"must be in [0, {MAX_EXTEND_ROUNDS}] (rounds)")
    if search.auto_extend and search.algorithm != "grid":
        reader.fail("search.auto_extend", "grows a grid: it needs algorithm: grid")
    if not 0 <= search.seed < 2**32:  # numpy's seed range, which Optuna's samplers use
        reader.fail("search.seed", f"must be in [0, 2^32); got {search.seed}")
    if search.storage is not None and "://" not in search.storage:
        reader.fail(
            "search.storage",
            f"{search.storage!r} is not a database URL (e.g. postgresql://user@host/db); "
            "leave it out for a journal file in the sweep's folder",
        )
    return search


def check_search(reader: FieldReader, spec: SweepSpec, fixed_hps: tuple[str, ...]) -> None:
    """The search against the whole spec: η searched or fixed (``fixed_hps``: the keys of
    ``hps:``), each range fit for its algorithm, enough points for a joint fit, a grid of a
    listable size."""
    search = spec.search
    if "lr" not in search.names and "lr" not in fixed_hps:
        reader.fail(
            "search.space",
            "has no lr: the learning rate matters most and transfers with the rest; search "
            "it (lr: {log2_range: [-10, -4]}) or fix it explicitly with hps.lr",
        )
    _check_joint(reader, search)
    cmaes = search.algorithm == "optuna" and search.sampler == "cmaes"
    for hp in search.space:
        key = f"search.space.{hp.name}"
        if search.algorithm == "grid" and not hp.is_discrete:
            reader.fail(key, "low/high is for algorithm: optuna; a grid needs log2_range/values")
        if cmaes and hp.is_discrete:
            reader.fail(key, "sampler cmaes needs continuous ranges (low/high)")
    if search.algorithm == "grid":
        runs = math.prod(len(hp.values) for hp in search.space) * len(spec.cells)
        if runs * len(spec.seeds) > MAX_GRID_RUNS:
            reader.fail(
                "search.space",
                f"the grid has {runs * len(spec.seeds):,} runs (more than {MAX_GRID_RUNS:,}); "
                "narrow the ranges or use algorithm: optuna",
            )


def _check_joint(reader: FieldReader, search: SearchSpec) -> None:
    """A search of several HPs must give the joint fit enough points."""
    d = len(search.space)
    if d < 2:
        return
    needed = needed_points(d)
    names = ", ".join(search.names)
    if search.algorithm == "optuna" and search.num_samples < needed:
        reader.fail(
            "search.num_samples",
            f"{search.num_samples} points cannot locate the joint optimum of {d} HPs "
            f"({names}): it needs at least {needed}",
        )
    if search.algorithm == "grid":
        for hp in search.space:
            if len(hp.values) < 3:
                reader.fail(
                    f"search.space.{hp.name}",
                    f"has {len(hp.values)} value(s): a joint fit of {names} needs at least "
                    "3 per HP (a quadratic along each)",
                )


def _slice(reader: FieldReader, raw: Any, space: tuple[HPRange, ...]) -> SliceSpec:
    section = dict(reader.mapping("search.slice", raw, field_names(SliceSpec)))
    seeds = section.pop("seeds", None)
    cut = reader.build("search.slice", SliceSpec, section)
    if seeds is not None:
        numbers = reader.number_list("search.slice.seeds", seeds, int)
        cut = dataclasses.replace(cut, seeds=reader.distinct("search.slice.seeds", numbers))
    if cut.hp not in {hp.name for hp in space}:
        reader.fail("search.slice.hp", f"{cut.hp!r} is not searched (search.space)")
    if not (cut.step > 0 and cut.octaves >= cut.step):  # NaN too
        reader.fail("search.slice", f"needs step > 0 and octaves >= step; got {cut}")
    if cut.octaves / cut.step > 50:
        reader.fail("search.slice", "gives more than 101 values; widen step or narrow octaves")
    return cut


def _hp_range(reader: FieldReader, name: str, raw: Any) -> HPRange:
    key = f"search.space.{name}"
    keys = ("log2_range", "step", "values", "low", "high", "log")
    spec = reader.mapping(key, raw, keys)
    forms = [form for form in ("log2_range", "values", "low") if form in spec]
    if len(forms) != 1:
        reader.fail(key, "give exactly one of log2_range: [lo, hi], values: [...], low/high")
    if "log2_range" in spec:
        hp = _log2_range(reader, key, name, spec)
    elif "values" in spec:
        values = reader.number_list(f"{key}.values", spec["values"], float)
        hp = HPRange(name, values=values)
    else:
        hp = _continuous(reader, key, name, spec)
    _check_hp_values(reader, key, hp)
    return hp


def _log2_range(reader: FieldReader, key: str, name: str, spec: dict[str, Any]) -> HPRange:
    pair = reader.number_list(f"{key}.log2_range", spec["log2_range"], float)
    if len(pair) != 2:
        reader.fail(f"{key}.log2_range", "expected [lo, hi] (log2 exponents)")
    step = reader.coerce(f"{key}.step", spec.get("step", 0.5), float)
    if not step > 0:
        reader.fail(f"{key}.step", f"must be > 0; got {step}")
    lo, hi = pair
    if hi < lo:
        reader.fail(f"{key}.log2_range", f"is empty: hi ({hi}) < lo ({lo})")
    if not -1000 <= lo <= hi <= 1000:  # NaN too; 2^±1000 is still a finite float
        reader.fail(f"{key}.log2_range", f"expected exponents within ±1000; got [{lo}, {hi}]")
    count = math.floor((hi - lo) / step + 1e-9) + 1
    if count > MAX_GRID_RUNS:
        reader.fail(f"{key}.step", f"gives {count:,} values; expected at most {MAX_GRID_RUNS:,}")
    values = tuple(2.0 ** (lo + i * step) for i in range(count))
    return HPRange(name, values=values, log2_range=(lo, hi), step=step)


def _continuous(reader: FieldReader, key: str, name: str, spec: dict[str, Any]) -> HPRange:
    if "high" not in spec:
        reader.fail(f"{key}.high", "missing (low/high come together)")
    low = reader.coerce(f"{key}.low", spec["low"], float)
    high = reader.coerce(f"{key}.high", spec["high"], float)
    log = reader.coerce(f"{key}.log", spec.get("log", False), bool)
    if not low < high:
        reader.fail(key, f"empty range: low ({low}) must be < high ({high})")
    if log and low <= 0:
        reader.fail(f"{key}.low", f"a log range needs low > 0; got {low}")
    return HPRange(name, low=low, high=high, log=log)


def _check_hp_values(reader: FieldReader, key: str, hp: HPRange) -> None:
    bounds = [*hp.values, *(v for v in (hp.low, hp.high) if v is not None)]
    for value in bounds:
        if not math.isfinite(value):
            reader.fail(key, f"values must be finite; got {value}")
        if hp.name == "weight_decay" and value < 0:
            reader.fail(key, f"weight_decay must be >= 0; got {value}")
        if hp.name != "weight_decay" and value <= 0:
            reader.fail(key, f"{hp.name} must be > 0; got {value}")
