"""Each parameter's role, declared by the type of the layer that holds it
(``docs/parameterizations.md#parameter-roles``).

A model says "this is the readout" by building a :class:`Readout`, not by tagging a module;
:func:`param_spec` maps a layer type to its parameters' :class:`~hptransfer.param.ParamSpec`.
A new block (e.g. a LLaMA block) declares its roles the same way: by its layer types, and
subclasses :class:`ResidualBlock`, which marks its parameters as inside a residual block (depth
rules apply to them) and scales each branch by the depth rules' multiplier.
"""

from __future__ import annotations

import torch
from torch import nn

from hptransfer.models.sparse import MaskedLinear
from hptransfer.param import ParamSpec, Role


class Readout(nn.Linear):
    """The unembedding / classifier head: fan-in grows with width, fan-out fixed.

    ``zero_init`` starts the weight at 0 (μP practice, Tensor Programs V App. D.2). With a
    normal init the logits start at size ∝ σ·√width·(output multiplier): under μP and SμPar
    (multiplier α_out/m_d) they shrink like 1/√width, the one coordinate not flat in width
    at step 1 of the coordinate check. At 0 they start at 0 at every width and the first
    update, which μP scales right, sets their size.
    """

    def __init__(self, in_features: int, out_features: int, *, zero_init: bool = False, **kw):
        super().__init__(in_features, out_features, **kw)
        self.zero_init = zero_init


class ResidualBlock(nn.Module):
    """A block of the residual stream: ``x + residual · branch(x)`` for each of its branches.

    ``residual`` is the depth rules' branch multiplier m_L^(−α) (1 without depth rules).
    Every parameter inside is a block parameter (:func:`hptransfer.models.param_specs`).
    """

    def __init__(self, residual: float = 1.0) -> None:
        super().__init__()
        self.residual = residual

    def add(self, x: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
        """The residual stream after adding one branch's output."""
        return x + self.residual * branch


class InputLayer(nn.Linear):
    """An MLP's input layer: fan-in fixed, fan-out grows with width (embedding-like)."""


# Dense weights by layer type (a plain nn.Linear has no role: a model must say which it is).
_DENSE_ROLES: tuple[tuple[type[nn.Module], Role], ...] = (
    (Readout, Role.READOUT),
    (InputLayer, Role.EMBEDDING),
    (nn.Embedding, Role.EMBEDDING),
)


def param_spec(module: nn.Module, param_name: str) -> ParamSpec:
    """The spec of ``module``'s own parameter ``param_name``."""
    if isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
        return ParamSpec(Role.VECTOR, fill=1.0 if param_name == "weight" else 0.0)
    if param_name == "bias":
        return ParamSpec(Role.VECTOR, fill=0.0)
    if isinstance(module, Readout) and module.zero_init:
        return ParamSpec(Role.READOUT, fill=0.0)
    if isinstance(module, MaskedLinear):
        return ParamSpec(Role.HIDDEN, density=module.density, init_scale=module.init_scale)
    role = next((role for cls, role in _DENSE_ROLES if isinstance(module, cls)), None)
    if role is None:
        raise AssertionError(f"{type(module).__name__}.{param_name} has no declared role")
    return ParamSpec(role)
