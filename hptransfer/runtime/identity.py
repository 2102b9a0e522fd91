"""Which run is which: a run's deterministic ids and its row in ``trials.parquet``.

``trial_id = f"{point_id}-s{seed}"`` names what was asked for (the whole configuration,
parameterization included), :func:`run_key` what gets trained (the resolved model and its
per-parameter HPs, data, budget, seed). Sweeps and targets store their runs under these ids.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from hptransfer import provenance
from hptransfer.config import RunConfig
from hptransfer.store import HP_COLUMNS

# The columns of a trials row that say which run was asked for; the rest are its outcome.
CONFIG_COLUMNS = (
    "trial_id", "point_id", "run_key", "sweep", "spec_hash", "parameterization", "model",
    "width", "depth", "heads", "density", "base_width", "base_density", "corpus", "optimizer",
    "seed", *HP_COLUMNS, "readout_zero_init", "max_steps",
)  # fmt: skip


def trial_id(point_id: str, seed: int) -> str:
    return f"{point_id}-s{seed}"


def config_hash(run: RunConfig) -> str:
    """Stable short hash of everything in a run configuration."""
    content = {
        **dataclasses.asdict(run),
        "model": run.model.to_dict(),
        "train": run.train.to_dict(),
        "hps": run.hps.to_dict(),
        "base": run.base.to_dict(),
    }
    text = json.dumps(content, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def point_id(run: RunConfig) -> str:
    """Id of a run's HP point: its configuration without the seed."""
    return config_hash(dataclasses.replace(run, seed=0))


@functools.lru_cache(maxsize=4096)
def run_key(run: RunConfig) -> str:
    """Hash of what determines the trained model: the model shape (data-derived sizes filled
    in), each parameter's resolved init std, LR, multiplier, weight decay and ε, the forward
    scales, the data, the training budget and the seed (and the source of a python builder
    and training function). The parameterization, base shape and base HPs enter only through
    what they resolve to, so runs with equal keys train bit-identical models."""
    from hptransfer.adapt import describe
    from hptransfer.adapt.builder import source_hash
    from hptransfer.data import load_dataset
    from hptransfer.models import forward_scales
    from hptransfer.train import complete_run

    run = complete_run(run, load_dataset(run.data))
    train = run.train.to_dict()
    if run.model.density >= 1:  # no mask: how a masked update is taken changes nothing
        train.pop("muon_masked_update", None)
    content = {
        "model": run.model.to_dict(),
        "data": dataclasses.asdict(run.data),
        "train": train,
        "seed": run.seed,
        "scales": dataclasses.asdict(forward_scales(run)),
        "params": [param.to_dict() for param in describe(run)],
    }
    if run.model.kind == "python":  # an edited builder never reuses the old one's runs
        content["source"] = source_hash("model.build", run.model.build)
    if run.train.kind == "python":  # nor an edited training function
        content["train_source"] = source_hash("train.fn", run.train.fn)
    text = json.dumps(content, sort_keys=True, default=str)  # floats as repr: exact
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def trial_row(
    point: str, run: RunConfig, sweep: str, spec_hash: str, outcome: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``trials.parquet`` row of one run; ``outcome`` holds the metrics, ``status`` and
    the provenance of the worker that trained it (a run that failed or was stopped before
    its summary gets this process's versions and commit, and no device)."""
    model = run.model
    origin = {**dict.fromkeys(provenance.FIELDS, ""), **provenance.process_fields()}
    return {
        "trial_id": trial_id(point, run.seed),
        "point_id": point,
        "run_key": run_key(run),
        "sweep": sweep,
        "spec_hash": spec_hash,
        "parameterization": run.parameterization,
        "model": model.kind,
        "width": model.width,
        "depth": model.depth,
        "heads": model.heads,
        "density": float(model.density),
        "base_width": run.base.width,
        "base_density": float(run.base.density),
        "corpus": run.data.corpus,
        "optimizer": run.train.optimizer,
        "seed": run.seed,
        **{name: float(getattr(run.hps, name)) for name in HP_COLUMNS},
        "readout_zero_init": bool(model.readout_zero_init),
        "max_steps": run.train.steps,
        "steps": int(outcome.get("steps", 0)),
        "tokens": int(outcome.get("tokens", 0)),
        "train_loss": float(outcome.get("train_loss", math.nan)),
        "val_loss": float(outcome.get("val_loss", math.nan)),
        "val_loss_se": float(outcome.get("val_loss_se", math.nan)),
        "diverged": bool(outcome.get("diverged", False)),
        "status": outcome["status"],
        "same_as": "",
        "wall_s": float(outcome.get("wall_s", math.nan)),
        "kernel": str(outcome.get("kernel", "")),
        **{name: str(outcome.get(name, origin[name])) for name in provenance.FIELDS},
        "error": str(outcome.get("error", "")),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
