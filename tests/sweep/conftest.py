"""Sweep test helpers: a tiny valid spec (synthetic corpus, a few steps) written to disk."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

TINY_SPEC: dict[str, Any] = {
    "name": "tiny",
    "model": {"kind": "gpt", "width": 16, "depth": 1, "heads": 2, "context": 8},
    "data": {"corpus": "synthetic", "batch_size": 4, "seq_len": 8, "eval_batches": 1},
    "train": {"steps": 10, "warmup_steps": 1, "eval_every": 5},
    "parameterization": "supar",
    "search": {"space": {"lr": {"log2_range": [-7, -6], "step": 1}}},
    "seeds": [0, 1],
}


def tiny_spec(**changes: Any) -> dict[str, Any]:
    """TINY_SPEC with top-level sections replaced or (for dicts) updated."""
    spec = copy.deepcopy(TINY_SPEC)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key].update(value)
        else:
            spec[key] = value
    return spec


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """write_spec(text_or_dict, name="spec.yaml") -> path of the written YAML file."""

    def write(content: str | dict[str, Any], name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        return path

    return write
