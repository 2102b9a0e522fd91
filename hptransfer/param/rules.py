"""SP, μP and SμPar as data: one rule per parameter role (SPEC.md's table lives here only).

Every factor is a power law in the width multiplier m_d and the density multiplier m_rho,
so a rule is a pair of exponents. Adding a parameterization is adding one table entry.

Forward multipliers use the multiplier form of μP (Tensor Programs V, Table 9): the readout
output is scaled by α_out/m_d and its weight keeps a width-independent init and Adam LR.
SGD rules follow from that form: the readout weight is "vector-like" (one dimension grows),
so its SGD LR scales by m_d, which is Table 3's "readout LR / m_d" written for the
multiplied weight.

:data:`PARAMETERIZATIONS` is the one registry of names; :func:`parameterization` looks one up
and is the only place an unknown name is refused (with a did-you-mean hint).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from hptransfer.errors import ConfigError, did_you_mean
from hptransfer.param.base import Multipliers


class Role(str, Enum):
    """How a parameter scales with width (SPEC.md)."""

    EMBEDDING = "embedding"  # fan-in fixed, fan-out grows: input layer / token embedding
    HIDDEN = "hidden"  # fan-in grows with width: QKV, attention out, FFN up/down, MLP hidden
    READOUT = "readout"  # fan-in grows, fan-out fixed: unembedding / classifier head
    VECTOR = "vector"  # biases and norm gains


@dataclass(frozen=True)
class Scaling:
    """The factor ``m_d ** width * m_rho ** density``."""

    width: float = 0.0
    density: float = 0.0

    def __call__(self, m: Multipliers) -> float:
        return float(m.width**self.width * m.density**self.density)


ONE = Scaling()


@dataclass(frozen=True)
class RoleRule:
    """How one role's init variance, learning rates and forward output scale with (m_d, m_rho).

    init variance = σ² · init_var; Adam LR = η · adam_lr; SGD LR = η · sgd_lr; the layer's
    output is multiplied by ``output`` (times α_in for embeddings, α_out for the readout).
    ``decay`` says whether weight decay applies.
    """

    init_var: Scaling = ONE
    adam_lr: Scaling = ONE
    sgd_lr: Scaling = ONE
    output: Scaling = ONE
    decay: bool = True


@dataclass(frozen=True)
class Parameterization:
    name: str
    title: str
    rules: Mapping[Role, RoleRule]
    mup_attention: bool  # True: logits qᵀk·√d₀/d_head; False: qᵀk/√d_head

    def rule(self, role: Role) -> RoleRule:
        return self.rules[role]


_VECTOR = RoleRule(decay=False)
_EMBEDDING = RoleRule()

SP = Parameterization(
    name="sp",
    title="standard practice (same σ, η at every shape)",
    rules={
        Role.EMBEDDING: _EMBEDDING,
        Role.HIDDEN: RoleRule(),
        Role.READOUT: RoleRule(),
        Role.VECTOR: _VECTOR,
    },
    mup_attention=False,
)

MUP = Parameterization(
    name="mup",
    title="maximal update parameterization (μP)",
    rules={
        Role.EMBEDDING: RoleRule(sgd_lr=Scaling(width=1)),
        Role.HIDDEN: RoleRule(init_var=Scaling(width=-1), adam_lr=Scaling(width=-1)),
        Role.READOUT: RoleRule(sgd_lr=Scaling(width=1), output=Scaling(width=-1)),
        Role.VECTOR: RoleRule(sgd_lr=Scaling(width=1), decay=False),
    },
    mup_attention=True,
)

SUPAR = Parameterization(
    name="supar",
    title="sparse maximal update parameterization (SμPar)",
    rules={
        **MUP.rules,
        # The hidden fan-in that matters is the number of non-zero inputs, m_d·m_rho.
        # SGD: the masked update sums over m_rho·fan_in inputs, so η / m_rho (experimental).
        Role.HIDDEN: RoleRule(
            init_var=Scaling(width=-1, density=-1),
            adam_lr=Scaling(width=-1, density=-1),
            sgd_lr=Scaling(density=-1),
        ),
    },
    mup_attention=True,
)

PARAMETERIZATIONS: dict[str, Parameterization] = {p.name: p for p in (SP, MUP, SUPAR)}


def parameterization(name: str) -> Parameterization:
    """The registered parameterization ``name``; a :class:`ConfigError` with the closest
    registered name otherwise."""
    if not isinstance(name, str) or name not in PARAMETERIZATIONS:
        raise ConfigError(
            f"unknown parameterization {name!r}{did_you_mean(str(name), PARAMETERIZATIONS)}; "
            f"expected one of {', '.join(PARAMETERIZATIONS)}"
        )
    return PARAMETERIZATIONS[name]
