"""SP, μP and SμPar as data: one rule per parameter role (the only copy in code of the tables
of ``docs/parameterizations.md``).

Every factor is a power law in the width multiplier m_d and the density multiplier m_rho,
so a rule is a pair of exponents. Adding a parameterization is adding one table entry.

Depth (CompleteP, ``docs/parameterizations.md#depth-completep``) composes with each entry:
``<name>+completep`` is the entry with depth exponent α = 1, ``<name>+completep=<α>`` any α
in [0, 1] (0.5: depth-μP; 0: depth rules off, the entry itself). Its factors are powers of
m_L = depth / base depth that apply to parameters inside residual blocks
(:meth:`Parameterization.block_lr`,
:meth:`Parameterization.block_eps`) and to each block's output
(:meth:`Parameterization.branch_multiplier`); width and density rules are unchanged.

Forward multipliers use the multiplier form of μP (Tensor Programs V, Table 9): the readout
output is scaled by α_out/m_d and its weight keeps a width-independent init and Adam LR.
SGD rules follow from that form: the readout weight is "vector-like" (one dimension grows),
so its SGD LR scales by m_d, which is Table 3's "readout LR / m_d" written for the
multiplied weight.

:data:`PARAMETERIZATIONS` is the one registry of names, their labels and their order
(:func:`param_label`, :func:`param_order`: how every table and figure names and orders them);
:func:`parameterization` looks one up and is the only place an unknown name is refused (with a
did-you-mean hint).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

from hptransfer.errors import ConfigError, did_you_mean
from hptransfer.param.base import BudgetMultipliers, Multipliers


class Role(str, Enum):
    """How a parameter scales with width (``docs/parameterizations.md#parameter-roles``)."""

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
    ``decay`` says whether weight decay applies. ``muon_lr``: the role's matrices train with
    Muon under ``optimizer: muon``, at LR η · muon_lr on top of torch's own shape adjustment
    (``docs/muon.md``); None: the role stays on AdamW with its Adam rule.
    """

    init_var: Scaling = ONE
    adam_lr: Scaling = ONE
    sgd_lr: Scaling = ONE
    muon_lr: Scaling | None = None
    output: Scaling = ONE
    decay: bool = True


@dataclass(frozen=True)
class Parameterization:
    """Width and density rules per role, and the depth exponent α of CompleteP's rules."""

    name: str
    title: str
    label: str  # how tables and figures name it
    rules: Mapping[Role, RoleRule]
    mup_attention: bool  # True: logits qᵀk·√d₀/d_head; False: qᵀk/√d_head
    depth_alpha: float = 0.0  # 0: no depth rules (GPT-2's residual init, branches × 1)

    def rule(self, role: Role) -> RoleRule:
        return self.rules[role]

    @property
    def depth_rules(self) -> bool:
        """Whether CompleteP's depth rules are on (α > 0)."""
        return self.depth_alpha > 0

    def branch_multiplier(self, m: Multipliers) -> float:
        """Each residual block's output scale m_L^(−α)."""
        return float(m.depth**-self.depth_alpha)

    def block_lr(self, m: Multipliers) -> float:
        """Adam LR factor of every parameter inside a residual block: m_L^(α−1) with depth
        rules on, else 1 (α = 0 is "off", not m_L^(−1))."""
        return float(m.depth ** (self.depth_alpha - 1)) if self.depth_rules else 1.0

    def block_eps(self, role: Role, m: Multipliers, scale_eps: bool) -> float:
        """Adam ε factor of a parameter inside a residual block: m_L^(−α), and with
        ``scale_eps`` its width factor (the hidden LR's 1/(m_d·m_rho); CompleteP's 1/m_d on
        block norms and biases, which have none without depth rules)."""
        width = self.eps_factor(role, m, scale_eps)
        if self.depth_rules and scale_eps and role is Role.VECTOR:
            width = 1.0 / m.width
        return width * float(m.depth**-self.depth_alpha)

    def eps_factor(self, role: Role, m: Multipliers, scale_eps: bool) -> float:
        """Adam ε factor outside residual blocks: the role's Adam LR factor with
        ``scale_eps``, else 1."""
        return self.rule(role).adam_lr(m) if scale_eps else 1.0


_VECTOR = RoleRule(decay=False)
_EMBEDDING = RoleRule()

SP = Parameterization(
    name="sp",
    label="SP",
    title="standard practice (same σ, η at every shape)",
    rules={
        Role.EMBEDDING: _EMBEDDING,
        Role.HIDDEN: RoleRule(muon_lr=ONE),
        Role.READOUT: RoleRule(),
        Role.VECTOR: _VECTOR,
    },
    mup_attention=False,
)

MUP = Parameterization(
    name="mup",
    label="μP",
    title="maximal update parameterization (μP)",
    rules={
        Role.EMBEDDING: RoleRule(sgd_lr=Scaling(width=1)),
        # Muon: torch's "original" adjustment √max(1, out/in) already meets the spectral
        # condition at a fixed aspect ratio, so the width factor is 1 (docs/muon.md).
        Role.HIDDEN: RoleRule(init_var=Scaling(width=-1), adam_lr=Scaling(width=-1), muon_lr=ONE),
        Role.READOUT: RoleRule(sgd_lr=Scaling(width=1), output=Scaling(width=-1)),
        Role.VECTOR: RoleRule(sgd_lr=Scaling(width=1), decay=False),
    },
    mup_attention=True,
)

SUPAR = Parameterization(
    name="supar",
    label="SμPar",
    title="sparse maximal update parameterization (SμPar)",
    rules={
        **MUP.rules,
        # The hidden fan-in that matters is the number of non-zero inputs, m_d·m_rho.
        # SGD: the masked update sums over m_rho·fan_in inputs, so η / m_rho (experimental).
        Role.HIDDEN: RoleRule(
            init_var=Scaling(width=-1, density=-1),
            adam_lr=Scaling(width=-1, density=-1),
            sgd_lr=Scaling(density=-1),
            # Muon: no density factor. Orthogonalizing the masked momentum already holds the
            # masked update's effect on the layer's output flat in density; η/m_rho (Adam's
            # rule) blows it up ~300× at 1/16 (docs/muon.md, results/muon_coord_density).
            muon_lr=ONE,
        ),
    },
    mup_attention=True,
)

# What an ablation takes from one rule set as its "LR rule"; the rest of a role's rule (init
# variance, forward output, decay) and the attention scale are its "init rule".
LR_RULES = ("adam_lr", "sgd_lr", "muon_lr")


def ablation(
    name: str, label: str, init: Parameterization, lr: Parameterization
) -> Parameterization:
    """A rule set with ``init``'s init rule (init variances, forward multipliers, attention
    scale, decay) and ``lr``'s LR rule (Adam, SGD and Muon LR factors) per role; the
    weight decay of ``independent`` mode and a scaled ε follow the LR rule."""
    rules = {
        role: dataclasses.replace(rule, **{f: getattr(lr.rule(role), f) for f in LR_RULES})
        for role, rule in init.rules.items()
    }
    title = f"{init.label}'s init and forward multipliers, {lr.label}'s learning rates (ablation)"
    return Parameterization(name, title, label, rules, mup_attention=init.mup_attention)


SUPAR_INIT = ablation("supar-init", "SμPar init only", init=SUPAR, lr=SP)
SUPAR_LR = ablation("supar-lr", "SμPar LR only", init=SP, lr=SUPAR)

# The registry, in the papers' order, then the ablations (tables and figures follow it).
PARAMETERIZATIONS: dict[str, Parameterization] = {
    p.name: p for p in (SP, MUP, SUPAR, SUPAR_INIT, SUPAR_LR)
}
PAPERS = (SP.name, MUP.name, SUPAR.name)  # the papers' rule sets (coord-check's default)
# Which one ``transfer`` trains when not told, of those a sweep fitted: the most scale-aware.
TRANSFER_PREFERENCE = (SUPAR.name, MUP.name, SP.name)

COMPLETEP = "completep"  # the depth suffix: ``<name>+completep[=<α>]``


def parameterization(name: str) -> Parameterization:
    """The registered parameterization ``name``, with depth rules when it ends in
    ``+completep[=<α>]``; a :class:`ConfigError` with the closest registered name otherwise."""
    width_name, plus, depth = name.partition("+") if isinstance(name, str) else (name, "", "")
    if not isinstance(width_name, str) or width_name not in PARAMETERIZATIONS:
        raise ConfigError(
            f"unknown parameterization {width_name!r}"
            f"{did_you_mean(str(width_name), PARAMETERIZATIONS)}; expected one of "
            f"{', '.join(PARAMETERIZATIONS)}, optionally with +{COMPLETEP} or +{COMPLETEP}=<α>"
        )
    entry = PARAMETERIZATIONS[width_name]
    if not plus:
        return entry
    alpha = _depth_alpha(name, depth)
    if alpha == 0:
        return entry
    return dataclasses.replace(
        entry,
        name=canonical_name(width_name, alpha),
        title=f"{entry.title} + CompleteP depth rules (α = {alpha:g})",
        label=f"{entry.label} + CompleteP" + ("" if alpha == 1 else f" α={alpha:g}"),
        depth_alpha=alpha,
    )


def registered(name: str) -> Parameterization | None:
    """The parameterization ``name``, or None when it is not a registered name."""
    try:
        return parameterization(name)
    except ConfigError:
        return None


def param_label(name: str) -> str:
    """``μP``, ``SμPar + CompleteP``, ``μP + CompleteP α=0.5``; an unknown name as it is."""
    entry = registered(name)
    return name if entry is None else entry.label


def param_order(names: Iterable[str]) -> list[str]:
    """The distinct ``names`` in table and legend order: by width rules in the registry's order
    (SP, μP, SμPar), then depth exponent; unknown names last."""

    def key(name: str) -> tuple[int, float, str]:
        entry = registered(name)
        if entry is None:
            return len(PARAMETERIZATIONS), 0.0, name
        return list(PARAMETERIZATIONS).index(name.partition("+")[0]), entry.depth_alpha, name

    return sorted(set(names), key=key)


def canonical_name(width_name: str, alpha: float) -> str:
    """One spelling per rule set: ``mup``, ``mup+completep`` (α = 1), ``mup+completep=0.5``."""
    if alpha == 0:
        return width_name
    return f"{width_name}+{COMPLETEP}" + ("" if alpha == 1 else f"={alpha:g}")


def _depth_alpha(name: str, suffix: str) -> float:
    """α of a ``completep[=<α>]`` suffix, checked to lie in [0, 1]."""
    key, eq, raw = suffix.partition("=")
    if key != COMPLETEP or (eq and not raw):
        raise ConfigError(
            f"unknown parameterization {name!r}: the depth suffix is +{COMPLETEP} "
            f"or +{COMPLETEP}=<α> (α in [0, 1])"
        )
    try:
        alpha = float(raw) if eq else 1.0
    except ValueError:
        alpha = math.nan
    if not 0 <= alpha <= 1:  # NaN too
        raise ConfigError(f"parameterization {name!r}: depth α must be in [0, 1]; got {raw}")
    return alpha


# ---------------------------------------------------------------------------- the budget


@dataclass(frozen=True)
class BudgetScaling:
    """The factor ``m_D ** tokens * m_B ** batch``."""

    tokens: float = 0.0
    batch: float = 0.0

    def __call__(self, m: BudgetMultipliers) -> float:
        return float(m.tokens**self.tokens * m.batch**self.batch)


FIXED = BudgetScaling()


@dataclass(frozen=True)
class BudgetRule:
    """How the base HPs move with the training budget
    (``docs/parameterizations.md#the-training-budget``): factors in (m_D, m_B) on η, on weight
    decay, on Adam's ε, and on 1 − β of both Adam moments. They apply to every parameter
    alike, on top of the width, density (and depth) rules."""

    name: str
    title: str
    lr: BudgetScaling = FIXED
    weight_decay: BudgetScaling = FIXED
    eps: BudgetScaling = FIXED
    one_minus_beta: BudgetScaling = FIXED


_SQRT_B_OVER_D = BudgetScaling(tokens=-0.5, batch=0.5)

BUDGET_NONE = BudgetRule("none", "the proxy's HPs at any budget (μP/SμPar say nothing of it)")
COMPLETEDP = BudgetRule(
    "completedp",
    "Complete(d)P's closed form (Mlodozeniec et al., arXiv 2512.22382)",
    lr=_SQRT_B_OVER_D,
    weight_decay=_SQRT_B_OVER_D,  # η·λ ∝ m_B/m_D: AdamW's timescale a fixed fraction of the run
    eps=BudgetScaling(tokens=0.5, batch=-0.5),
    one_minus_beta=BudgetScaling(tokens=-1.0, batch=1.0),
)
FITTED = "fitted"  # η from a fit.json η* line (:func:`fitted_rule`); nothing else moves
BUDGET_RULES: dict[str, BudgetRule | None] = {
    BUDGET_NONE.name: BUDGET_NONE,
    COMPLETEDP.name: COMPLETEDP,
    FITTED: None,
}


def fitted_rule(gamma: float = 0.0, beta: float = 0.0) -> BudgetRule:
    """The measured rule η ∝ m_D^(−γ)·m_B^β (γ from a sweep over horizons, β from one over
    batch sizes at fixed tokens); ε, Adam's β's and weight decay stay."""
    return BudgetRule(
        FITTED,
        f"η* ∝ D^-γ·B^β fitted on proxy sweeps (γ = {gamma:.3g}, β = {beta:.3g})",
        lr=BudgetScaling(tokens=-gamma, batch=beta),
    )


def budget_rule_name(name: str) -> str:
    """``name`` if it is a registered budget rule; a :class:`ConfigError` otherwise."""
    if name not in BUDGET_RULES:
        raise ConfigError(
            f"unknown budget rule {name!r}{did_you_mean(str(name), BUDGET_RULES)}; "
            f"expected one of {', '.join(BUDGET_RULES)}"
        )
    return name
