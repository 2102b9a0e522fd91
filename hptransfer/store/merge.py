"""Merge the results of several sweeps into one study folder.

A study often needs runs that one grid cannot express: SP needs a wider LR grid than SμPar,
or a width study shares its base-width runs with a density study. Each part runs as its own
sweep; :func:`merge_sweeps` writes the union of their ``trials.parquet`` and
``curves.parquet`` into a study folder that ``hptransfer fit`` and ``plot`` read like any
sweep's. The folder gets ``sources.json`` (the sweeps merged, runs taken from each) and no
``spec.yaml``, so ``hptransfer sweep`` never resumes into it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from hptransfer.config import parse_fraction
from hptransfer.errors import ConfigError, ResultsError
from hptransfer.store.folder import SOURCES_FILE, SPEC_FILE, TRIALS_FILE
from hptransfer.store.io import write_table, write_text
from hptransfer.store.location import Location, location
from hptransfer.store.parquet import ResultsStore
from hptransfer.store.schema import CURVES, TRIALS

# Runs are comparable only when these agree: one base shape, one task, one horizon.
SHARED_COLUMNS = ("base_width", "base_density", "corpus", "optimizer", "max_steps")
# Columns a merge can select runs by (``--only density=1,1/8``, ``--only width:density=…``).
FILTER_COLUMNS = {"parameterization": str, "width": int, "depth": int, "density": float}
# columns -> the accepted value tuples: {("density",): ((1.0,), (0.125,))}
Selection = dict[tuple[str, ...], tuple[tuple[str | int | float, ...], ...]]


@dataclass(frozen=True)
class MergeOutcome:
    directory: Location
    runs: int
    taken: dict[str, int]  # source folder -> runs taken from it


def merge_sweeps(
    sources: Sequence[str | Location], target: str | Location, only: Selection | None = None
) -> MergeOutcome:
    """Write the union of the sources' runs into ``target``, replacing an earlier merge.

    ``only`` keeps the runs whose columns take one of the listed values. A run stored by two
    sources (same ``trial_id``: same configuration and seed) is taken once, from the first.
    Nothing is written if a source is missing or unreadable, the target is a sweep's own
    folder, no run is selected, or the runs differ in base shape, corpus, optimizer or steps
    (a fit over them would compare unlike runs).
    """
    paths, target = [location(s) for s in sources], location(target)
    _check_folders(paths, target)
    stores = [ResultsStore(path) for path in paths]
    trials = pd.concat(
        [store.read_trials().assign(source=i) for i, store in enumerate(stores)],
        ignore_index=True,
    ).drop_duplicates("trial_id", keep="first")
    trials = trials[_selected(trials, only or {})]
    if trials.empty:
        raise ConfigError(f"no stored run matches --only {format_selection(only or {})}")
    _check_comparable(trials)
    curves = pd.concat(
        [store.read_curves().assign(source=i) for i, store in enumerate(stores)],
        ignore_index=True,
    ).merge(trials[["trial_id", "source"]], on=["trial_id", "source"])
    taken = {str(path): int((trials["source"] == i).sum()) for i, path in enumerate(paths)}
    store = ResultsStore(target)
    with store.lock():
        # curves first: trials.parquet is the source of truth, as in a sweep
        _write_table(store.curves_path, curves, CURVES)
        _write_table(store.trials_path, trials, TRIALS)
        doc = {"sources": list(taken), "only": format_selection(only or {}), "runs": taken}
        write_text(target / SOURCES_FILE, json.dumps(doc, indent=2) + "\n")
    return MergeOutcome(target, len(trials), taken)


def _check_folders(sources: list[Location], target: Location) -> None:
    if not sources:
        raise ConfigError("give at least one sweep folder to merge")
    for source in sources:
        if not ResultsStore(source).exists():
            raise ResultsError(f"{source}/{TRIALS_FILE} not found: is {source} a sweep folder?")
        if source.resolve() == target.resolve():
            raise ConfigError(f"{target} is also a source: merge into another folder")
    if (target / SPEC_FILE).exists():
        raise ConfigError(f"{target} is a sweep's folder (it has {SPEC_FILE}): merge elsewhere")


def _check_comparable(trials: pd.DataFrame) -> None:
    for column in SHARED_COLUMNS:
        values = sorted(trials[column].dropna().unique().tolist())
        if len(values) > 1:
            raise ConfigError(
                f"the sweeps differ in {column} ({', '.join(map(str, values))}): a study "
                "merges runs of one base shape, corpus, optimizer and horizon"
            )


def _write_table(path: Location, frame: pd.DataFrame, schema: pa.Schema) -> None:
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    write_table(path, table)


def parse_selection(items: Sequence[str]) -> Selection:
    """``--only`` items: ``density=1,1/8`` (one column) or ``width:density=32:1,64:1/4`` (joint
    values of several columns, e.g. the shapes of an iso-parameter study)."""
    selection: Selection = {}
    for item in items:
        key, sep, raw = (part.strip() for part in item.partition("="))
        columns = tuple(key.split(":"))
        if not sep or not raw or not all(c in FILTER_COLUMNS for c in columns):
            raise ConfigError(
                f"bad --only {item!r}; expected column=value,... or column:column=v:v,... with "
                f"columns among {', '.join(FILTER_COLUMNS)}, e.g. density=1,1/8"
            )
        try:
            selection[columns] = tuple(_values(columns, value) for value in raw.split(","))
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"bad --only value in {item!r}") from None
    return selection


def format_selection(selection: Selection) -> str:
    return " ".join(
        f"{':'.join(columns)}={','.join(':'.join(map(_format, v)) for v in values)}"
        for columns, values in selection.items()
    )


def _format(value: str | int | float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _values(columns: tuple[str, ...], text: str) -> tuple[str | int | float, ...]:
    parts = text.strip().split(":")
    if len(parts) != len(columns):
        raise ValueError(text)
    return tuple(_value(column, part.strip()) for column, part in zip(columns, parts, strict=True))


def _value(column: str, text: str) -> str | int | float:
    kind = FILTER_COLUMNS[column]
    return parse_fraction(text) if kind is float else kind(text)


def _selected(trials: pd.DataFrame, selection: Selection) -> pd.Series:
    keep = pd.Series(True, index=trials.index)
    for columns, values in selection.items():
        hits = pd.Series(False, index=trials.index)
        for value in values:
            match = pd.Series(True, index=trials.index)
            for column, wanted in zip(columns, value, strict=True):
                if FILTER_COLUMNS[column] is float:
                    match &= np.isclose(trials[column].to_numpy(float), float(wanted))
                else:
                    match &= trials[column].eq(wanted)
            hits |= match
        keep &= hits
    return keep
