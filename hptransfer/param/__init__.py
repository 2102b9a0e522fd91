"""Parameterizations (SP, μP, SμPar) as rules per parameter role, and their resolution.

``base``: the base shape, base HPs and multipliers; ``rules``: the one table of rules and the
registry of parameterization names; ``resolve``: from a parameter's spec to its HPs. Pure
data and arithmetic: nothing here imports torch or the rest of hptransfer (but ``errors``).
"""

from hptransfer.param.base import BaseHPs, BaseShape, Multipliers
from hptransfer.param.resolve import (
    ParamHP,
    ParamSpec,
    attention_scale,
    lr_factor,
    multipliers,
    output_multiplier,
    resolve,
)
from hptransfer.param.rules import (
    MUP,
    PARAMETERIZATIONS,
    SP,
    SUPAR,
    Parameterization,
    Role,
    param_label,
    param_order,
    parameterization,
)

__all__ = [
    "MUP",
    "PARAMETERIZATIONS",
    "SP",
    "SUPAR",
    "BaseHPs",
    "BaseShape",
    "Multipliers",
    "ParamHP",
    "ParamSpec",
    "Parameterization",
    "Role",
    "attention_scale",
    "lr_factor",
    "multipliers",
    "output_multiplier",
    "param_label",
    "param_order",
    "parameterization",
    "resolve",
]
