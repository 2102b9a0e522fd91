"""A target's training state on disk: what a resumed run needs to continue bit for bit.

One checkpoint is a folder with ``state.safetensors`` (model weights and masks, optimizer
tensors, RNG states) and ``state.json`` (step, schedule, optimizer groups, loss tracker, the
curve so far, the first step of every attempt, the run's fingerprint and whole configuration,
and the tensors file's size and SHA-256). The folder is on a disk or in object storage
(:mod:`hptransfer.store.location`). Nothing in it is unpickled. A
tensors file of the wrong size is an upload cut short (a killed run; the checkpoint before it
is used); the right size with another hash is damage, refused rather than silently replaced
by a restart from step 0.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hptransfer.config import RunConfig
from hptransfer.errors import ResultsError
from hptransfer.store import Location

STATE_TENSORS = "state.safetensors"
STATE_JSON = "state.json"
FORMAT = 2  # 2: the curve so far and the attempts' first steps in state.json
# What must match for a checkpoint to continue a run, with the words an error uses.
SHAPE_FIELDS = ("kind", "width", "depth", "heads", "density", "ffn_mult", "mask", "mask_seed")


@dataclass
class TrainingState:
    """Everything but the configuration: full (unsharded) tensors and plain values."""

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]  # torch.distributed.checkpoint's name-keyed optimizer state
    schedule: dict[str, Any]
    tracker: dict[str, Any]
    rng: dict[str, torch.Tensor]
    metrics: dict[str, Any]  # the last curve point, steps, diverged
    curve: list[dict[str, Any]]  # every curve point up to ``step``
    starts: list[int]  # the first step of every attempt that reached this checkpoint


def fingerprint(run: RunConfig) -> dict[str, Any]:
    """What a checkpoint must share with the run that continues it."""
    return {
        "parameterization": run.parameterization,
        **{name: getattr(run.model, name) for name in SHAPE_FIELDS},
        "hash": hashlib.sha256(
            json.dumps(
                {**dataclasses.asdict(run), "hps": run.hps.to_dict()}, sort_keys=True, default=list
            ).encode()
        ).hexdigest()[:12],
    }


def checkpoint_name(step: int) -> str:
    """The folder name of the checkpoint at ``step`` (Ray Train's ``checkpoint_dir_name``)."""
    return f"checkpoint_{step:09d}"


def write_checkpoint(folder: Path, state: TrainingState, run: RunConfig, model: RunConfig) -> None:
    """``model`` is ``run`` with its dataset-derived sizes filled in: what
    :func:`hptransfer.load_model` rebuilds the checkpoint's model from."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors, groups = _flatten_optimizer(state.optimizer)
    tensors.update({f"model/{k}": v.contiguous() for k, v in state.model.items()})
    tensors.update({f"rng/{k}": v for k, v in state.rng.items()})
    save_file(tensors, folder / STATE_TENSORS)
    meta = {
        "format": FORMAT,
        "step": state.step,
        "run": fingerprint(run),
        "config": dataclasses.asdict(model),
        "schedule": state.schedule,
        "tracker": state.tracker,
        "metrics": state.metrics,
        "curve": state.curve,
        "starts": state.starts,
        "param_groups": groups,
        "bytes": (folder / STATE_TENSORS).stat().st_size,
        "sha256": _sha256(folder / STATE_TENSORS),
    }
    (folder / STATE_JSON).write_text(json.dumps(meta))


def read_meta(folder: Location, *, verify: bool = True) -> dict[str, Any] | None:
    """The checkpoint's ``state.json`` if the checkpoint is complete; None if it was cut short.

    Raises ResultsError if it is complete but damaged (the tensors' hash is checked only
    with ``verify``)."""
    try:
        meta = json.loads((folder / STATE_JSON).read_text())
    except (FileNotFoundError, ValueError):  # not written yet, or cut short
        return None
    tensors = folder / STATE_TENSORS
    if not tensors.is_file() or tensors.stat().st_size != meta.get("bytes"):
        return None
    if verify and _sha256(tensors) != meta.get("sha256"):
        raise ResultsError(f"checkpoint {folder} is damaged ({STATE_TENSORS}: checksum){_RECOVER}")
    return meta


_RECOVER = ": move it aside to resume from the one before, or start over with --restart"


def check_compatible(folder: Location, meta: dict[str, Any], run: RunConfig) -> None:
    """Refuse a checkpoint of another format, target shape, parameterization or
    configuration."""
    if meta.get("format") != FORMAT:
        raise ResultsError(
            f"checkpoint {folder} has format {meta.get('format')}, this version reads "
            f"{FORMAT}: start over with --restart, or resume it with the version that wrote it"
        )
    stored, wanted = meta["run"], fingerprint(run)
    if stored == wanted:
        return
    diffs = [f"{k} {stored.get(k)} ≠ {v}" for k, v in wanted.items() if stored.get(k) != v]
    raise ResultsError(
        f"checkpoint {folder} is of another run ({', '.join(diffs)}): "
        "start over with --restart, or train into another results folder"
    )


def read_checkpoint(folder: Path, run: RunConfig) -> TrainingState:
    from safetensors.torch import load_file

    meta = read_meta(folder)
    if meta is None:
        raise ResultsError(f"checkpoint {folder} is incomplete{_RECOVER}")
    check_compatible(folder, meta, run)
    tensors = load_file(folder / STATE_TENSORS)
    return TrainingState(
        step=meta["step"],
        model=section(tensors, "model"),
        optimizer=_unflatten_optimizer(section(tensors, "optim"), meta["param_groups"]),
        schedule=meta["schedule"],
        tracker=meta["tracker"],
        rng=section(tensors, "rng"),
        metrics=meta["metrics"],
        curve=meta["curve"],
        starts=meta["starts"],
    )


def section(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors stored under ``prefix/`` (``model``, ``optim``, ``rng``), prefix removed."""
    start = len(prefix) + 1
    return {k[start:]: v for k, v in tensors.items() if k.startswith(f"{prefix}/")}


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Optimizer tensors as ``optim/<parameter>/<key>``; groups (JSON-able) apart."""
    tensors = {
        f"optim/{name}/{key}": torch.as_tensor(value)
        for name, values in state["state"].items()
        for key, value in values.items()
    }
    return tensors, [dict(group) for group in state["param_groups"]]


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list[dict]) -> dict[str, Any]:
    state: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        name, _, field = key.rpartition("/")
        state.setdefault(name, {})[field] = value
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    return {"state": state, "param_groups": groups}


def _sha256(path: Location) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_folders(run_dir: Location) -> list[Location]:
    """Ray Train's checkpoint folders of a target, oldest first."""
    return sorted(path for path in run_dir.glob("checkpoint_*") if path.is_dir())


def latest_checkpoint(run_dir: Location, run: RunConfig) -> Location | None:
    """The complete checkpoint with the highest step under a target's folder (Ray Train's
    ``checkpoint_*`` folders), checked against ``run``; None if there is none."""
    complete = []
    for folder in checkpoint_folders(run_dir):
        meta = read_meta(folder, verify=False)
        if meta is not None:
            complete.append((meta["step"], folder))
    if not complete:
        return None
    folder = max(complete)[1]
    meta = read_meta(folder)
    assert meta is not None  # complete a moment ago
    check_compatible(folder, meta, run)
    return folder
