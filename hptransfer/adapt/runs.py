"""A run's model, built-in or the user's: the one place that tells ``model.kind`` apart."""

from __future__ import annotations

import torch
from torch import nn

from hptransfer import models
from hptransfer.adapt.builder import build_python_model
from hptransfer.adapt.table import table_of
from hptransfer.config import RunConfig
from hptransfer.param import ParamHP


def build_model(run: RunConfig, device: torch.device | str = "cpu") -> nn.Module:
    """The run's model, initialised (seeded by ``run.seed``): the library's, or the one
    ``model.build`` returns, parametrized by the run's rules."""
    if run.model.kind == "python":
        return build_python_model(run, device)
    return models.build_model(run, device)


def plan_parameters(model: nn.Module, run: RunConfig) -> list[ParamHP]:
    """The resolved HPs of every parameter of the run's ``model``, in ``named_parameters``
    order (a python model's: the table :func:`parametrize` resolved them in)."""
    if run.model.kind == "python":
        return list(table_of(model).rows)
    return models.plan_parameters(model, run)


def describe(run: RunConfig) -> list[ParamHP]:
    """The per-parameter HP table of ``run``'s model, built on the meta device (no memory)."""
    return plan_parameters(build_model(run, device="meta"), run)
