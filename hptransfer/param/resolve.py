"""From (parameter role, parameterization, base HPs, base shape) to concrete per-parameter HPs.

A pure step: models declare each parameter's :class:`ParamSpec`; this module turns specs into
init std, learning rate, forward multiplier, weight decay and Adam ε. The multipliers are the
parameter's own: m_d from the model's width, m_rho from the density of the parameter's layer,
m_L from the model's depth (used only inside residual blocks, under depth rules).
``plan``, model init and the optimizer all read the same :class:`ParamHP` rows, so they cannot
disagree.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Protocol

from hptransfer.errors import ConfigError
from hptransfer.param.base import BaseHPs, BaseShape, Multipliers
from hptransfer.param.rules import Parameterization, Role

MUON = "muon"
# Muon's ε sits in its Newton–Schulz normalisation (torch's default), not in an Adam-style
# denominator: no rule or budget factor scales it (docs/muon.md).
MUON_EPS = 1e-7


class OptimizerSettings(Protocol):
    """What resolution reads of the training config (:class:`hptransfer.config.TrainConfig`)."""

    @property
    def optimizer(self) -> str: ...
    @property
    def weight_decay_mode(self) -> str: ...
    @property
    def eps(self) -> float: ...
    @property
    def scale_eps(self) -> bool: ...


@dataclass(frozen=True)
class ParamSpec:
    """What a model says about one parameter.

    ``init_scale`` is GPT-2's 1/√(2·n_layer) on the init std of residual output projections (dropped
    under depth rules: ``docs/parameterizations.md#depth-completep``); ``density`` is the requested
    density of a sparse layer's weight (m_rho = density / base density), None for a parameter that
    is never sparse (m_rho = 1); ``fill`` is a constant init (norm gains 1, biases 0) instead of a
    normal draw; ``block``: the parameter is inside a residual block (depth rules apply).
    """

    role: Role
    density: float | None = None
    init_scale: float = 1.0
    fill: float | None = None
    block: bool = False


@dataclass(frozen=True)
class ParamHP:
    """The resolved hyperparameters of one parameter tensor."""

    name: str
    role: Role
    shape: tuple[int, ...]
    density: float
    init_std: float
    fill: float | None
    lr: float
    multiplier: float
    weight_decay: float
    eps: float
    optimizer: str | None = None  # "muon" for a Muon-trained matrix; None: the run's optimizer

    def table_row(self) -> dict[str, object]:
        """The columns ``hptransfer plan`` shows, in its order; ``init`` is the normal init's
        std, or the constant a filled parameter starts at (a norm gain's 1)."""
        return {
            "name": self.name,
            "role": self.role.value,
            "shape": list(self.shape),
            "density": self.density,
            "init": self.init_std if self.fill is None else self.fill,
            "lr": self.lr,
            "multiplier": self.multiplier,
        }

    def to_dict(self) -> dict[str, object]:
        """Plain fields for hashes; ``optimizer`` only when set, so every run written before
        Muon keeps its key."""
        fields = dataclasses.asdict(self)
        if self.optimizer is None:
            del fields["optimizer"]
        return fields


def multipliers(
    spec: ParamSpec, width: int, base: BaseShape, depth: int | None = None
) -> Multipliers:
    """The parameter's m_d, m_rho and m_L: its model's width and depth and its own layer's
    density."""
    density = base.density if spec.density is None else spec.density
    return base.multipliers(width, density, depth)


def lr_factor(p: Parameterization, role: Role, m: Multipliers, optimizer: str) -> float:
    """The role's width-and-density LR factor for ``optimizer`` (``muon``: the role's Muon
    rule when it has one, else its Adam rule: those parameters train with AdamW)."""
    rule = p.rule(role)
    if optimizer == "sgd":
        return rule.sgd_lr(m)
    if optimizer == MUON and rule.muon_lr is not None:
        return rule.muon_lr(m)
    return rule.adam_lr(m)


def trains_with_muon(name: str, shape: tuple[int, ...], role: Role, p: Parameterization) -> bool:
    """Whether parameter ``name`` goes to Muon under ``optimizer: muon``: its role has a Muon
    rule. Muon updates matrices only, so a 1-D parameter given such a role is refused."""
    if p.rule(role).muon_lr is None:
        return False
    if len(shape) != 2:
        raise ConfigError(
            f"parameter {name} of shape {list(shape)} has role {role.value}, which trains with "
            "Muon, but Muon updates matrices only: give it role vector"
        )
    return True


def base_lr_ratio(role: Role, hps: BaseHPs) -> float:
    """The base LR of ``role`` over η: κ (``lr_emb_ratio``) for the embeddings and the
    readout, 1 for hidden weights and vectors."""
    return hps.lr_emb_ratio if role in (Role.EMBEDDING, Role.READOUT) else 1.0


def output_multiplier(p: Parameterization, role: Role, hps: BaseHPs, m: Multipliers) -> float:
    """Forward multiplier on a layer's output: α_in for embeddings, α_out/m_d for μP readouts."""
    alpha = {Role.EMBEDDING: hps.alpha_in, Role.READOUT: hps.alpha_out}.get(role, 1.0)
    return alpha * p.rule(role).output(m)


def attention_scale(
    p: Parameterization, head_dim: int, base_head_dim: int, alpha: float = 1.0
) -> float:
    """Logit scale: α_attn times SP's 1/√d_head, or times μP's √d₀/d_head, written as
    (1/√d_head)·√(d₀/d_head) so that it is bit-identical to SP at the base head size (and
    α_attn = 1 to no multiplier: 1.0·x is x exactly)."""
    sp_scale = 1.0 / math.sqrt(head_dim)
    rule = sp_scale * math.sqrt(base_head_dim / head_dim) if p.mup_attention else sp_scale
    return alpha * rule


def resolve(
    name: str,
    shape: tuple[int, ...],
    spec: ParamSpec,
    p: Parameterization,
    hps: BaseHPs,
    base: BaseShape,
    width: int,
    train: OptimizerSettings,
    depth: int | None = None,
) -> ParamHP:
    """The HPs of parameter ``name`` of a model of ``width`` and ``depth`` tuned at ``base``."""
    m = multipliers(spec, width, base, depth)
    rule = p.rule(spec.role)
    muon = train.optimizer == MUON and trains_with_muon(name, tuple(shape), spec.role, p)
    lr_mult = lr_factor(p, spec.role, m, train.optimizer) * base_lr_ratio(spec.role, hps)
    if spec.block and p.depth_rules:
        init_scale, depth_lr = 1.0, p.block_lr(m)
        eps = p.block_eps(spec.role, m, train.scale_eps)
    else:
        init_scale, depth_lr = spec.init_scale, 1.0
        eps = p.eps_factor(spec.role, m, train.scale_eps)
    return ParamHP(
        name=name,
        role=spec.role,
        shape=tuple(shape),
        density=1.0 if spec.density is None else spec.density,
        init_std=hps.init_std * math.sqrt(rule.init_var(m)) * init_scale,
        fill=spec.fill,
        lr=hps.lr * lr_mult * depth_lr,
        multiplier=output_multiplier(p, spec.role, hps, m),
        weight_decay=_weight_decay(rule.decay, hps.weight_decay, lr_mult, train.weight_decay_mode),
        eps=MUON_EPS if muon else train.eps * eps,
        optimizer=MUON if muon else None,
    )


def _weight_decay(decays: bool, wd: float, lr_mult: float, mode: str) -> float:
    """PyTorch decays by lr·wd. ``coupled``: wd as given, so decay shrinks with the group's LR.
    ``independent``: wd / lr_mult (the width and density LR factor, times κ on embeddings and
    readout), so lr·wd per step equals η·wd at every width, density and κ. Depth leaves wd
    alone (CompleteP's table: hidden wd λ·m_d), so lr·wd follows the LR's m_L^(α−1):
    constant at α = 1."""
    if not decays or wd == 0:
        return 0.0
    return wd if mode == "coupled" else wd / lr_mult
