"""Parameterizations (SP, μP, SμPar) as rules per parameter role, and their resolution."""

from hptransfer.param.resolve import (
    ParamHP,
    ParamSpec,
    attention_scale,
    lr_factor,
    output_multiplier,
    resolve,
)
from hptransfer.param.rules import MUP, PARAMETERIZATIONS, SP, SUPAR, Parameterization, Role

__all__ = [
    "MUP",
    "PARAMETERIZATIONS",
    "SP",
    "SUPAR",
    "ParamHP",
    "ParamSpec",
    "Parameterization",
    "Role",
    "attention_scale",
    "lr_factor",
    "output_multiplier",
    "resolve",
]
