"""The whole fit of one sweep: its trials (and spec.yaml) in, a :class:`Fit` out; refitted
only when the stored one is stale."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from hptransfer import provenance
from hptransfer.analysis import results
from hptransfer.analysis.fit.base import (
    base_hps,
    base_settings,
    base_shape,
    joint_at_base,
    joint_record,
    with_settings,
)
from hptransfer.analysis.fit.document import Fit, FitSettings, load_fit
from hptransfer.analysis.fit.lines import at_horizon, budget_lines
from hptransfer.analysis.fit.optima import drift_table, fit_optima
from hptransfer.analysis.fit.selection import group_axes, read_fit_trials, searched_hps, usable_mask
from hptransfer.budget import at_batch
from hptransfer.config import DataConfig, TrainConfig
from hptransfer.errors import DataError, ResultsError
from hptransfer.store import location
from hptransfer.store.folder import FIT_FILE, TRIALS_FILE


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
    chosen = base_settings(trials, usable & at_horizon(trials, horizon), base, settings.metric)
    proxy = at_horizon(trials, horizon) & with_settings(trials, chosen)
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
            optima[at_horizon(optima, horizon) & with_settings(optima, chosen)],
            trials[proxy],
            base,
            joint,
        ),
        base_settings=chosen,
        optima=optima,
        drift=drift_table(optima),
        joint={param: joint_record(opt) for param, opt in joint.items()},
        provenance=provenance.process_fields(),
        budget=budget_lines(trials, optima, settings, batch, batches),
        data=data or {},
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
        results.spec_base(spec),
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


def current_fit(sweep_dir: Path, settings: FitSettings | None = None) -> tuple[Fit, bool]:
    """The sweep's fit.json if at least as new as its trials, else a fresh (unwritten) fit.

    The flag says whether fit.json was used.
    """
    path, trials = location(sweep_dir) / FIT_FILE, location(sweep_dir) / TRIALS_FILE
    if path.is_file() and trials.is_file() and path.stat().st_mtime >= trials.stat().st_mtime:
        return load_fit(path), True
    return fit_sweep(sweep_dir, settings), False
