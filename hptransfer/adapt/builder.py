"""A spec's ``model: {kind: python, build: "package.module:function"}``: the user's builder,
called with the run's shape, parametrized by the run's rules.

The builder takes keyword arguments ``width``, ``depth``, ``heads``, ``context``, ``vocab``
(the data's input size) and ``outputs`` (its output size) and returns a module from token
ids (B, T) to logits (B, T, vocab). The base is the builder at the run's base width (and base
depth); the second build that tells widths apart is at twice the base width.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hptransfer.adapt.parametrize import parametrize
from hptransfer.config import RunConfig
from hptransfer.errors import ConfigError


def load_function(key: str, path: str) -> Callable[..., Any]:
    """The function ``package.module:function`` names (a module of the current directory
    too, as ``python -m`` finds it); a one-line error naming ``key`` if it cannot be had."""
    module_name, _, function = path.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # an import error, or whatever the module raises on import
        raise ConfigError(
            f"{key} {path!r}: module {module_name!r} does not import ({type(exc).__name__}: {exc})"
        ) from None
    found = getattr(module, function, None)
    if not callable(found):
        raise ConfigError(f"{key} {path!r}: {module_name} has no function {function!r}")
    return found


def source_hash(key: str, path: str) -> str:
    """Hash of the source of the module ``path`` names and of the one defining its function,
    so that an edited model (or training function) never reuses the stored runs of the old."""
    found = load_function(key, path)
    modules = {sys.modules[path.partition(":")[0]], inspect.getmodule(found)}
    digest = hashlib.sha256()
    for module in sorted(modules, key=lambda m: m.__name__):
        try:
            digest.update(Path(inspect.getsourcefile(module) or "").read_bytes())
        except (OSError, TypeError):  # no source file (built in C, an interpreter session)
            digest.update(repr(module).encode())
    return digest.hexdigest()[:16]


def call_builder(path: str, run: RunConfig, width: int, depth: int) -> nn.Module:
    """The user's model at ``width`` and ``depth`` (the run's other shape); the builder's own
    failure as a one-line error."""
    m = run.model
    shape = {
        "width": width,
        "depth": depth,
        "heads": m.heads,
        "context": m.context,
        "vocab": m.input_size,
        "outputs": m.output_size or m.input_size,
    }
    try:
        model = load_function("model.build", path)(**shape)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"model.build {path!r} raised {type(exc).__name__} at width {width}, depth "
            f"{depth}: {exc}"
        ) from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model.build {path!r} returned a {type(model).__name__}, not a module")
    return model


def build_python_model(run: RunConfig, device: torch.device | str = "cpu") -> nn.Module:
    """The run's model: built by the user's function, parametrized by the run's rules (seeded
    by ``run.seed``; masks by ``model.mask_seed``, else the seed)."""
    m, base = run.model, run.base
    base_depth = base.depth or m.depth
    with torch.device(device):
        model = call_builder(m.build, run, m.width, m.depth)

    def base_build() -> nn.Module:
        return call_builder(m.build, run, base.width, base_depth)

    def delta() -> nn.Module:
        return call_builder(m.build, run, 2 * base.width, base_depth)

    parametrize(
        model,
        base=base_build,
        delta=delta if m.width == base.width else None,
        parameterization=run.parameterization,
        density=m.density,
        base_density=base.density,
        hps=run.hps,
        optimizer=run.train.optimizer,
        weight_decay_mode=run.train.weight_decay_mode,
        eps=run.train.eps,
        scale_eps=run.train.scale_eps,
        mask=m.mask,
        mask_seed=run.seed if m.mask_seed is None else m.mask_seed,
        kernel=m.kernel,
        zero_readout=m.readout_zero_init,
        seed=run.seed,
    )
    return model
