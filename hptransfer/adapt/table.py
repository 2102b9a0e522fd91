"""The parameterization of one user model, kept off its tensors: a table keyed by name.

:func:`attach` stores the table as a plain attribute of the model's root module, where
``torch.compile`` (``_orig_mod``), DDP (``module``) and FSDP2 (in place) leave it reachable;
:func:`table_of` finds it through those wrappers. Names in a wrapped model carry the
wrappers' prefixes; :meth:`OwnTable.named` maps them back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from hptransfer.adapt.shapes import RESIDUAL, Width, canonical
from hptransfer.config import TrainConfig
from hptransfer.errors import ConfigError
from hptransfer.optim import MuonAdamW, group_parameters, sparse_masks
from hptransfer.param import BaseHPs, ParamHP, Role, parameterization
from hptransfer.param.resolve import MUON

ATTRIBUTE = "_hptransfer_table"


@dataclass(frozen=True)
class OwnTable:
    """What :func:`hptransfer.own.parametrize` decided for one model.

    ``rows``: every parameter's resolved HPs, in ``named_parameters`` order, under its
    canonical name; ``aliases``: every name a tied tensor has → its canonical name;
    ``outputs``: module → (what, the forward multiplier installed on its output): embedding
    α_in, readout α_out/m_d, residual branch m_L^(−α) (those equal to 1 are not installed);
    ``attention``: module → the logit scale it was given; ``unreached``: attention modules
    whose logit scale could not be set.
    """

    parameterization: str
    optimizer: str
    hps: BaseHPs
    width: Width
    density: float
    base_density: float
    depth: int | None
    base_depth: int | None
    rows: tuple[ParamHP, ...]
    aliases: Mapping[str, str]
    blocks: tuple[str, ...]
    outputs: Mapping[str, tuple[str, float]]
    attention: Mapping[str, float]
    unreached: tuple[str, ...]
    model_class: str

    def hp(self, name: str) -> ParamHP:
        """The HPs of parameter ``name`` (any of its names, with or without wrapper prefixes)."""
        key = self.aliases.get(canonical(name), self.aliases.get(canonical(name, ddp=True)))
        if key is None:
            raise ConfigError(f"{name!r} is not a parameter of the parametrized model")
        return next(row for row in self.rows if row.name == key)

    def named(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """``model``'s parameters (``model`` as wrapped now) under their canonical names."""
        ddp = _is_ddp_wrapped(model)
        named = {}
        for name, param in model.named_parameters():
            key = canonical(name, ddp=ddp)
            named[self.aliases.get(key, key)] = param
        return named

    @property
    def multipliers(self) -> tuple[float, float, float]:
        """m_d, m_rho and m_L (1 without blocks or without depth rules' base depth)."""
        m_depth = 1.0 if not (self.depth and self.base_depth) else self.depth / self.base_depth
        return self.width.model / self.width.base, self.density / self.base_density, m_depth


def attach(model: nn.Module, table: OwnTable) -> None:
    model.__dict__[ATTRIBUTE] = table


def is_parametrized(model: nn.Module) -> bool:
    return _find(model) is not None


def table_of(model: nn.Module) -> OwnTable:
    """The table of a parametrized model, through compile, DDP and FSDP2 wrappers."""
    table = _find(model)
    if table is None:
        raise ConfigError(
            f"{type(model).__name__} is not parametrized: call hptransfer.own.parametrize first"
        )
    return table


def _find(model: nn.Module) -> OwnTable | None:
    while model is not None:
        if ATTRIBUTE in model.__dict__:
            return model.__dict__[ATTRIBUTE]
        model = getattr(model, "_orig_mod", None) or (model.module if _is_ddp(model) else None)
    return None


def _is_ddp(model: nn.Module) -> bool:
    return isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel))


def _is_ddp_wrapped(model: nn.Module) -> bool:
    while model is not None and ATTRIBUTE not in model.__dict__:
        if _is_ddp(model):
            return True
        model = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
    return False


def param_groups(model: nn.Module) -> list[dict]:
    """Optimizer groups of a parametrized model (compiled, DDP or FSDP2-sharded alike): one
    per distinct (lr, weight decay, ε), each with its parameters' ``names``; SGD's have no ε."""
    table = table_of(model)
    groups = group_parameters(table.named(model), list(table.rows))
    if table.optimizer == "sgd":
        for group in groups:
            del group["eps"]
    return groups


def build_optimizer(model: nn.Module, **kwargs) -> torch.optim.Optimizer:
    """The optimizer the table was resolved for (AdamW, Adam, SGD, or Muon with AdamW) on
    :func:`param_groups`; ``kwargs`` (betas, momentum, …) go to its constructor."""
    table = table_of(model)
    groups = param_groups(model)
    if table.optimizer == MUON:
        options = {"betas": TrainConfig().betas, "momentum": TrainConfig().muon_momentum}
        return MuonAdamW(groups, masks=sparse_masks(model), **(options | kwargs))
    cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}
    return cls[table.optimizer](groups, lr=groups[0]["lr"], **kwargs)


def header(table: OwnTable) -> str:
    """The parameterization, shape and multipliers on one line (as ``hptransfer plan``)."""
    m_d, m_rho, m_l = table.multipliers
    depth_rules = parameterization(table.parameterization).depth_rules
    depth = f", depth {table.depth}" if table.depth else ""
    return (
        f"{table.parameterization}: {table.model_class} width {table.width.model}, density "
        f"{table.density:g}{depth} (m_d = {m_d:g}, m_rho = {m_rho:g}"
        + (f", m_L = {m_l:g}" if depth_rules else "")
        + f"; base width {table.width.base}, density {table.base_density:g}"
        + (f", depth {table.base_depth}" if depth_rules and table.base_depth else "")
        + ")"
    )


def forward_line(table: OwnTable) -> str:
    """The forward multipliers installed and the logit scales set."""
    parts = []
    for what in (Role.EMBEDDING.value, Role.READOUT.value, RESIDUAL):
        values = sorted({v for kind, v in table.outputs.values() if kind == what})
        if values or what != RESIDUAL:
            parts.append(f"{what} × {_values(values)}")
    if table.attention:
        scales = sorted(set(table.attention.values()))
        parts.append(f"attention logits × {_values(scales)} (α_attn {table.hps.alpha_attn:.4g})")
    line = "forward: " + ", ".join(parts)
    if table.unreached:
        line += f"; attention not reached: {', '.join(table.unreached)}"
    return line


def _values(values: list[float]) -> str:
    if not values:
        return "1"
    return " / ".join(f"{v:.4g}" for v in values) if len(values) < 4 else f"{values[0]:.4g}…"


def is_constant(tensor: torch.Tensor) -> float | None:
    """The value every element of ``tensor`` has, if one (``None`` on the meta device)."""
    if tensor.device.type == "meta" or tensor.numel() == 0:
        return None
    first = tensor.reshape(-1)[0].item()
    return float(first) if math.isfinite(first) and bool((tensor == first).all()) else None
