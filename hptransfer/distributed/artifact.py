"""The trained target as a usable artifact: ``model.safetensors`` and ``model.json``.

``model.safetensors`` holds every weight and every mask (bool); ``model.json`` the whole run
configuration (shape, mask kind and seed, parameterization, base HPs and shape, data,
training budget) and the final metrics. :func:`load_model` rebuilds the model from them, or
from one of the target's checkpoints (:mod:`hptransfer.distributed.checkpoint`), which carry the
same configuration and tensors.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hptransfer.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from hptransfer.distributed.checkpoint import (
    STATE_JSON,
    STATE_TENSORS,
    checkpoint_folders,
    read_meta,
    section,
)
from hptransfer.errors import ResultsError
from hptransfer.param import BaseHPs, BaseShape
from hptransfer.store import Location, atomic_write, location, write_text

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model.json"
FORMAT = 1


def write_artifact(
    folder: Location, run: RunConfig, weights: dict[str, torch.Tensor], metrics: dict[str, Any]
) -> None:
    """Both files, each written atomically (a temp file, then a rename)."""
    from safetensors.torch import save

    folder.mkdir(parents=True, exist_ok=True)
    data = save({k: v.contiguous() for k, v in weights.items()})
    atomic_write(folder / WEIGHTS_FILE, lambda f: f.write(data))
    config = {"format": FORMAT, "run": dataclasses.asdict(run), "metrics": metrics}
    write_text(folder / CONFIG_FILE, json.dumps(config, indent=1))


def run_from_dict(values: dict[str, Any]) -> RunConfig:
    """The inverse of ``dataclasses.asdict`` for a run configuration."""
    train = dict(values["train"])
    train["betas"] = tuple(train["betas"])
    return RunConfig(
        model=ModelConfig(**values["model"]),
        data=DataConfig(**values["data"]),
        train=TrainConfig(**train),
        hps=BaseHPs(**values["hps"]),
        base=BaseShape(**values["base"]),
        parameterization=values["parameterization"],
        seed=values["seed"],
    )


def load_run(folder: str | Path) -> RunConfig:
    path = location(folder) / CONFIG_FILE
    try:
        return run_from_dict(json.loads(path.read_text())["run"])
    except FileNotFoundError:
        raise ResultsError(f"{path} not found: not a trained target's folder") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ResultsError(f"{path} is not a target's configuration ({exc})") from None


def load_model(folder: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """The target in ``folder`` (local, or an object storage URI), rebuilt with its
    parameterization's forward scales and its masks, for evaluation or further training:
    a trained target's folder gives the final model, one of its ``checkpoint_*`` folders
    the model as it was at that checkpoint's step (a target still training has those)."""
    from hptransfer.adapt import build_model

    where = location(folder)
    if (where / CONFIG_FILE).is_file():
        run, weights = load_run(where), _tensors(where / WEIGHTS_FILE, device)
    elif (where / STATE_JSON).is_file():
        run, weights = _checkpoint_model(where, device)
    else:
        raise ResultsError(_not_a_model(where))
    model = build_model(run, device=device)
    model.load_state_dict(weights)
    return model


def _checkpoint_model(
    folder: Location, device: torch.device | str
) -> tuple[RunConfig, dict[str, torch.Tensor]]:
    """A checkpoint's configuration and model tensors (weights and masks)."""
    meta = read_meta(folder)
    if meta is None:
        raise ResultsError(f"checkpoint {folder} is incomplete (cut short, or still uploading)")
    if "config" in meta:
        run = run_from_dict(meta["config"])
    elif (folder.parent / CONFIG_FILE).is_file():  # written before checkpoints had it
        run = load_run(folder.parent)
    else:
        raise ResultsError(
            f"checkpoint {folder} predates checkpoints that carry their configuration and its "
            f"target has no {CONFIG_FILE} yet: load it once the target has finished"
        )
    return run, section(_tensors(folder / STATE_TENSORS, device), "model")


def _tensors(path: Location, device: torch.device | str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load, load_file

    if isinstance(path, Path):
        return load_file(path, device=str(device))  # memory-mapped
    return {k: v.to(device) for k, v in load(path.read_bytes()).items()}


def _not_a_model(folder: Location) -> str:
    found = checkpoint_folders(folder) if folder.is_dir() else []
    if found:
        return (
            f"{folder} has no {CONFIG_FILE} yet (still training?): load one of its "
            f"checkpoints, e.g. {found[-1]}"
        )
    return (
        f"{folder} is neither a trained target's folder ({CONFIG_FILE}) nor one of its "
        f"checkpoints ({STATE_JSON})"
    )
