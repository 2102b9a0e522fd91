"""The model library: build a model for a run, list each parameter's role, initialise it.

``build_model`` on ``device="meta"`` builds shapes only (no memory, no masks): that is how
``plan`` shows a width-16384 model instantly.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from hptransfer.config import RunConfig
from hptransfer.models.gpt import GPT, ForwardScales
from hptransfer.models.mlp import MLP
from hptransfer.models.roles import InputLayer, Readout, ResidualBlock, param_spec
from hptransfer.models.sparse import MaskedLinear, draw_mask
from hptransfer.param import (
    ParamHP,
    ParamSpec,
    Role,
    attention_scale,
    output_multiplier,
    parameterization,
    resolve,
)


def forward_scales(run: RunConfig) -> ForwardScales:
    p = parameterization(run.parameterization)
    m = run.multipliers
    return ForwardScales(
        embedding=output_multiplier(p, Role.EMBEDDING, run.hps, m),
        readout=output_multiplier(p, Role.READOUT, run.hps, m),
        attention=attention_scale(
            p, run.model.head_dim, run.base.head_dim(run.model.heads), run.hps.alpha_attn
        ),
        residual=p.branch_multiplier(m),
    )


def build_model(run: RunConfig, device: torch.device | str = "cpu") -> nn.Module:
    """Build and initialise the run's model (seeded by ``run.seed``; its masks too, unless
    ``model.mask_seed`` fixes them). A ``python`` model is built by
    :func:`hptransfer.adapt.build_model`."""
    if run.model.kind not in ("gpt", "mlp"):
        raise AssertionError(f"the library has no {run.model.kind} model")
    model_cls = GPT if run.model.kind == "gpt" else MLP
    shape = run.model
    if shape.mask_seed is None:
        shape = shape.replace(mask_seed=run.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run.seed)
        model = model_cls(shape, forward_scales(run), device=device)
        if torch.device(device).type != "meta":
            init_parameters(model, plan_parameters(model, run))
    return model


def param_specs(model: nn.Module) -> dict[str, ParamSpec]:
    """Every parameter's role, claimed exactly once (tied weights appear once); parameters
    inside a :class:`ResidualBlock` are marked ``block``."""
    in_blocks = {
        f"{block_name}.{param_name}"
        for block_name, block in model.named_modules()
        if isinstance(block, ResidualBlock)
        for param_name, _ in block.named_parameters()
    }
    specs: dict[str, ParamSpec] = {}
    for module_name, module in model.named_modules():
        for param_name, _ in module.named_parameters(recurse=False):
            name = f"{module_name}.{param_name}" if module_name else param_name
            spec = param_spec(module, param_name)
            specs[name] = dataclasses.replace(spec, block=True) if name in in_blocks else spec
    names = {name for name, _ in model.named_parameters()}
    unclaimed = names - specs.keys()
    if unclaimed:
        raise AssertionError(f"parameters with no role: {sorted(unclaimed)}")
    return {name: spec for name, spec in specs.items() if name in names}


def plan_parameters(model: nn.Module, run: RunConfig) -> list[ParamHP]:
    """The resolved HPs of every parameter, in ``named_parameters`` order."""
    p = parameterization(run.parameterization)
    specs = param_specs(model)
    width, depth = run.model.width, run.model.depth
    return [
        resolve(
            name, tuple(param.shape), specs[name], p, run.hps, run.base, width, run.train, depth
        )
        for name, param in model.named_parameters()
    ]


def describe(run: RunConfig) -> list[ParamHP]:
    """The per-parameter HP table of ``run``'s model, built on the meta device (no memory)."""
    return plan_parameters(build_model(run, device="meta"), run)


@torch.no_grad()
def init_parameters(model: nn.Module, plans: list[ParamHP]) -> None:
    params = dict(model.named_parameters())
    for plan in plans:
        if plan.fill is not None:
            params[plan.name].fill_(plan.fill)
        else:
            params[plan.name].normal_(0.0, plan.init_std)
    for module in model.modules():
        if isinstance(module, MaskedLinear):
            module.apply_mask_()


def sparse_layers(model: nn.Module) -> list[MaskedLinear]:
    return [m for m in model.modules() if isinstance(m, MaskedLinear)]


__all__ = [
    "GPT",
    "MLP",
    "ForwardScales",
    "InputLayer",
    "MaskedLinear",
    "Readout",
    "ResidualBlock",
    "build_model",
    "describe",
    "draw_mask",
    "forward_scales",
    "init_parameters",
    "param_specs",
    "plan_parameters",
    "sparse_layers",
]
