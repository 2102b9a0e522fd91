"""The trained target as a usable artifact: ``model.safetensors`` and ``model.json``.

``model.safetensors`` holds every weight and every mask (bool); ``model.json`` the whole run
configuration (shape, mask kind and seed, parameterization, base HPs and shape, data,
training budget) and the final metrics. :func:`load_model` rebuilds the model from them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hptransfer.config import (
    BaseHPs,
    BaseShape,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
)
from hptransfer.errors import ResultsError
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
    """The trained target in ``folder`` (local, or an object storage URI), rebuilt with its
    parameterization's forward scales and its masks, for evaluation or further training."""
    from safetensors.torch import load, load_file

    from hptransfer.models import build_model

    run = load_run(folder)
    model = build_model(run, device=device)
    path = location(folder) / WEIGHTS_FILE
    if isinstance(path, Path):
        weights = load_file(path, device=str(device))  # memory-mapped
    else:
        weights = {k: v.to(device) for k, v in load(path.read_bytes()).items()}
    model.load_state_dict(weights)
    return model
