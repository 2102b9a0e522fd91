"""``parametrize``: SP, μP, SμPar (and CompleteP's depth rules) on a user's ``nn.Module``.

Every number comes from the one rules table (:mod:`hptransfer.param`): this module only finds
each parameter's :class:`~hptransfer.param.ParamSpec` (role from shapes, :mod:`.shapes`;
blocks, residual projections and attention from the module tree, :mod:`.structure`), then
re-initialises, masks, and installs the forward multipliers as hooks and logit scales.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hptransfer.adapt import shapes as sh
from hptransfer.adapt import structure
from hptransfer.adapt.attention import set_attention
from hptransfer.adapt.sparse import sparsify
from hptransfer.adapt.table import OwnTable, attach, is_constant, is_parametrized
from hptransfer.config import TrainConfig
from hptransfer.errors import ConfigError
from hptransfer.param import (
    BaseHPs,
    BaseShape,
    Parameterization,
    ParamHP,
    ParamSpec,
    Role,
    output_multiplier,
    resolve,
)
from hptransfer.param import (
    parameterization as lookup_parameterization,
)
from hptransfer.param.base import check_density

Build = nn.Module | Callable[[], nn.Module]


def parametrize(
    model: nn.Module,
    base: Build,
    delta: Build | None = None,
    *,
    parameterization: str = "supar",
    density: float = 1.0,
    base_density: float = 1.0,
    hps: BaseHPs | Mapping[str, float] | None = None,
    roles: Mapping[str, str] | None = None,
    blocks: str | Sequence[str] | None = None,
    optimizer: str = "adamw",
    weight_decay_mode: str = "independent",
    eps: float = 1e-8,
    scale_eps: bool = False,
    mask: str = "random",
    mask_seed: int = 0,
    kernel: str = "auto",
    zero_readout: bool = False,
    seed: int | None = None,
) -> OwnTable:
    """Parametrize ``model`` in place (see :mod:`hptransfer.own`); returns its table."""
    if is_parametrized(model):
        raise ConfigError("the model is already parametrized: build a fresh one")
    p = lookup_parameterization(parameterization)
    check_density("density", density)
    check_density("base_density", base_density)
    base_hps = _hps(hps)
    train = TrainConfig(
        optimizer=optimizer, weight_decay_mode=weight_decay_mode, eps=eps, scale_eps=scale_eps
    )
    base_model, other = _built(base), _built(delta) if delta is not None else model
    builds = Builds.of(model, base_model, other, blocks)
    block_names, base_blocks = builds.blocks, builds.base_blocks
    model_shapes, base_shapes, other_shapes = builds.model, builds.base, builds.other
    width = builds.width
    depth, base_depth = len(block_names) or None, len(base_blocks) or None
    tensors = sh.tensors(model)
    chosen = sh.overrides(tensors, roles or {})
    role_of = _roles(tensors, chosen, base_shapes, other_shapes)
    if p.depth_rules and not block_names:
        raise ConfigError(
            f"{p.name}: depth rules need residual blocks and none were found: name them, "
            "e.g. blocks='model.layers.*'"
        )
    hidden = [t for t in tensors if role_of[t.name] is Role.HIDDEN]
    residual = _residual_outputs(hidden, chosen, model_shapes, block_names, width.model)
    if density < 1:
        if not hidden:
            raise ConfigError(
                f"density {density:g}: the model has no hidden matrices to make sparse "
                "(no matrix whose fan-in and fan-out both grow with width)"
            )
        sparsify(model, [t.name for t in hidden], density, mask, mask_seed, kernel)

    shape = BaseShape(width=width.base, density=base_density, depth=base_depth)
    params = dict(model.named_parameters())
    rows = []
    for t in tensors:
        spec = ParamSpec(
            role_of[t.name],
            density=density if role_of[t.name] is Role.HIDDEN else None,
            init_scale=1 / math.sqrt(2 * depth) if t.name in residual and depth else 1.0,
            fill=_fill(params[t.name], role_of[t.name], zero_readout, t),
            block=structure.block_of(t.name, block_names) is not None,
        )
        hp = resolve(
            t.name, model_shapes[t.name], spec, p, base_hps, shape, width.model, train, depth
        )
        rows.append(hp)
    _initialise(model, rows, seed)

    m = shape.multipliers(width.model, density, depth)
    outputs = _output_multipliers(
        p, base_hps, m, tensors, role_of, residual, base_shapes, other_shapes
    )
    for module_name, (_, value) in outputs.items():
        model.get_submodule(module_name).register_forward_hook(_scale_output(value))
    attention = set_attention(model, base_model, p, base_hps.alpha_attn, block_names, base_blocks)
    unreached = tuple(structure.unreached_attention(model, list(attention)))
    if unreached:
        warnings.warn(
            f"hptransfer: the attention logit scale was not applied to {', '.join(unreached)}: "
            "give each a float `scaling` attribute its logits are multiplied by "
            "(see hptransfer.own.scaled_dot_product_attention)",
            stacklevel=2,
        )
    table = OwnTable(
        parameterization=p.name,
        optimizer=optimizer,
        hps=base_hps,
        width=width,
        density=density,
        base_density=base_density,
        depth=depth,
        base_depth=base_depth,
        rows=tuple(rows),
        aliases={sh.canonical(n): t.name for t in tensors for n in t.names},
        blocks=tuple(block_names),
        outputs=outputs,
        attention=attention,
        unreached=unreached,
        model_class=type(model).__name__,
    )
    attach(model, table)
    return table


@dataclass(frozen=True)
class Builds:
    """The model's shapes and the base's and other build's under the model's names, the
    blocks of the model and of the base, and the width they give."""

    model: dict[str, tuple[int, ...]]
    base: dict[str, tuple[int, ...]]
    other: dict[str, tuple[int, ...]]
    blocks: list[str]
    base_blocks: list[str]
    width: sh.Width

    @classmethod
    def of(
        cls,
        model: nn.Module,
        base: nn.Module,
        other: nn.Module,
        blocks: str | Sequence[str] | None = None,
    ) -> Builds:
        names = structure.find_blocks(model, blocks)
        base_blocks = structure.find_blocks(base, blocks)
        shapes = sh.shapes(model)
        base_shapes = sh.aligned(shapes, sh.shapes(base), names, base_blocks, "base")
        other_blocks = structure.find_blocks(other, blocks)
        other_shapes = sh.aligned(shapes, sh.shapes(other), names, other_blocks, "delta")
        width = sh.measure_width(base_shapes, other_shapes, shapes)
        return cls(shapes, base_shapes, other_shapes, names, base_blocks, width)


def base_width(
    model: nn.Module, base: Build, delta: Build | None = None, blocks: str | None = None
) -> int:
    """The base build's width, as :func:`parametrize` measures it."""
    other = _built(delta) if delta is not None else model
    return Builds.of(model, _built(base), other, blocks).width.base


def _hps(hps: BaseHPs | Mapping[str, float] | None) -> BaseHPs:
    if hps is None or isinstance(hps, BaseHPs):
        return hps or BaseHPs()
    unknown = sorted(set(hps) - set(BaseHPs.names()))
    if unknown:
        raise ConfigError(f"hps: unknown {unknown[0]!r}; expected {', '.join(BaseHPs.names())}")
    return BaseHPs(**hps)


def _built(build: Build) -> nn.Module:
    """A module as given, or what a builder returns, built on the meta device."""
    if isinstance(build, nn.Module):
        return build
    with torch.device("meta"):
        return build()


def _roles(
    tensors: list[sh.Tensor],
    chosen: Mapping[str, str],
    base: Mapping[str, tuple[int, ...]],
    other: Mapping[str, tuple[int, ...]],
) -> dict[str, Role]:
    """Every tensor's role: its override, or what its shapes say; refuses the undecidable."""
    roles: dict[str, Role] = {}
    undecided = []
    for t in tensors:
        if t.name in chosen:
            roles[t.name] = Role.HIDDEN if chosen[t.name] == sh.RESIDUAL else Role(chosen[t.name])
            continue
        role = sh.tensor_role(t, base[t.name], other[t.name])
        if role is None:
            undecided.append(t)
        else:
            roles[t.name] = role
    if undecided:
        listed = ", ".join(
            f"{t.name} ({'×'.join(map(str, base[t.name]))} → {'×'.join(map(str, other[t.name]))})"
            for t in undecided[:4]
        )
        more = f" and {len(undecided) - 4} more" if len(undecided) > 4 else ""
        raise ConfigError(
            f"cannot tell the role of {listed}{more} from their shapes at two widths: give "
            f"roles={{'{undecided[0].name}': 'embedding' | 'hidden' | 'readout' | 'vector'}}"
        )
    return roles


def _residual_outputs(
    hidden: list[sh.Tensor],
    chosen: Mapping[str, str],
    model_shapes: Mapping[str, tuple[int, ...]],
    blocks: list[str],
    width: int,
) -> set[str]:
    fan_outs = {}
    for t in hidden:
        axes = t.uses[0].axes or (1, 0)
        fan_outs[t.name] = (t.uses[0].module, model_shapes[t.name][axes[1]])
    found = structure.residual_outputs(fan_outs, blocks, width)
    return found | {name for name, role in chosen.items() if role == sh.RESIDUAL}


def _fill(param: torch.Tensor, role: Role, zero_readout: bool, tensor: sh.Tensor) -> float | None:
    """A constant init: biases 0; other vectors keep the constant they were built with
    (norm gains 1, or 0 for a gain applied as 1 + w; on the meta device, 1); a
    zero-initialised readout 0. ``None``: drawn (a matrix) or kept as built (a vector)."""
    if role is Role.VECTOR:
        if tensor.name.rpartition(".")[2] == "bias":
            return 0.0
        return 1.0 if param.device.type == "meta" else is_constant(param)
    if role is Role.READOUT and zero_readout:
        return 0.0
    return None


@torch.no_grad()
def _initialise(model: nn.Module, rows: list[ParamHP], seed: int | None) -> None:
    """Draw every matrix by the rules, fill the constant ones (vectors not constant keep
    their values), then re-apply the masks."""
    params = dict(model.named_parameters())
    if next(iter(params.values())).device.type == "meta":
        return
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        for row in rows:
            if row.fill is not None:
                params[row.name].fill_(row.fill)
            elif row.role is not Role.VECTOR:
                params[row.name].normal_(0.0, row.init_std)
    for module in model.modules():
        if hasattr(module, "apply_mask_"):
            module.apply_mask_()


def _output_multipliers(
    p: Parameterization,
    hps: BaseHPs,
    m: Any,
    tensors: list[sh.Tensor],
    role_of: Mapping[str, Role],
    residual: set[str],
    base: Mapping[str, tuple[int, ...]],
    other: Mapping[str, tuple[int, ...]],
) -> dict[str, tuple[str, float]]:
    """Module → (what, multiplier) of each output multiplier that is not 1: embeddings
    α_in, readouts α_out/m_d (a tied embedding's too, where it is the output layer),
    residual projections the depth rules' branch multiplier."""
    embedding = output_multiplier(p, Role.EMBEDDING, hps, m)
    readout = output_multiplier(p, Role.READOUT, hps, m)
    branch = p.branch_multiplier(m)
    found: dict[str, tuple[str, float]] = {}
    for t in tensors:
        role = role_of[t.name]
        readers = set(sh.readout_uses(t, base[t.name], other[t.name]))
        if role is Role.READOUT:
            readers |= {u.module for u in t.uses}
        if role in (Role.EMBEDDING, Role.READOUT):
            for module in sorted(readers):
                found[module] = (Role.READOUT.value, readout)
        if role is Role.EMBEDDING:
            for use in t.uses:
                if use.module not in readers:
                    found[use.module] = (Role.EMBEDDING.value, embedding)
        if t.name in residual:
            found[t.uses[0].module] = (sh.RESIDUAL, branch)
    return {k: v for k, v in found.items() if v[1] != 1.0}


def _scale_output(value: float) -> Callable:
    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        return output * value

    return hook
