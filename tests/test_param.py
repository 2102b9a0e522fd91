"""The parameterization rules against docs/parameterizations.md's table, written out independently
here."""

import dataclasses
import math

import pytest

from hptransfer.config import TrainConfig
from hptransfer.errors import ConfigError
from hptransfer.param import (
    PARAMETERIZATIONS,
    BaseHPs,
    BaseShape,
    ParamSpec,
    Role,
    attention_scale,
    parameterization,
    resolve,
)

HPS = BaseHPs(lr=0.01, init_std=0.02, alpha_in=3.0, alpha_out=5.0, weight_decay=0.1)
SHAPES = [(1, 1), (4, 1), (1, 0.125), (8, 0.25), (32, 1 / 64)]
BASE = BaseShape(width=16, density=1.0)


ADAMW = TrainConfig()


def resolve_at(role: Role, p: str, m_d: float, m_rho: float, train: TrainConfig = ADAMW):
    """Resolve one parameter of a layer at density m_rho in a model m_d times the base width."""
    spec = ParamSpec(role, density=m_rho)
    return resolve("w", (2, 2), spec, PARAMETERIZATIONS[p], HPS, BASE, int(m_d * 16), train)


def spec_table(p: str, role: Role, m_d: float, m_rho: float) -> tuple[float, float, float]:
    """(init variance, Adam LR, forward multiplier) straight from docs/parameterizations.md."""
    s2, eta = HPS.init_std**2, HPS.lr
    hidden = {
        "sp": (s2, eta),
        "mup": (s2 / m_d, eta / m_d),
        "supar": (s2 / (m_d * m_rho), eta / (m_d * m_rho)),
        "supar-init": (s2 / (m_d * m_rho), eta),  # SμPar's init, SP's LR
        "supar-lr": (s2, eta / (m_d * m_rho)),  # SP's init, SμPar's LR
    }
    readout_mult = HPS.alpha_out if p in ("sp", "supar-lr") else HPS.alpha_out / m_d
    return {
        Role.EMBEDDING: (s2, eta, HPS.alpha_in),
        Role.HIDDEN: (*hidden[p], 1.0),
        Role.READOUT: (s2, eta, readout_mult),
        Role.VECTOR: (s2, eta, 1.0),
    }[role]


@pytest.mark.parametrize("p", ["sp", "mup", "supar", "supar-init", "supar-lr"])
@pytest.mark.parametrize(("m_d", "m_rho"), SHAPES)
@pytest.mark.parametrize("role", list(Role))
def test_adam_rules_match_spec_table(p, m_d, m_rho, role):
    hp = resolve_at(role, p, m_d, m_rho)
    var, lr, mult = spec_table(p, role, m_d, m_rho)
    assert hp.init_std == pytest.approx(math.sqrt(var), rel=1e-12)
    assert hp.lr == pytest.approx(lr, rel=1e-12)
    assert hp.multiplier == pytest.approx(mult, rel=1e-12)


@pytest.mark.parametrize(("m_d", "m_rho"), SHAPES)
def test_mup_sgd_rules(m_d, m_rho):
    """μP with SGD (Tensor Programs V): hidden LR constant, input/vector LR × m_d, and the
    readout — written with the α_out/m_d multiplier — × m_d (Table 3's /m_d on W_eff)."""
    train = TrainConfig(optimizer="sgd")
    lr = {role: resolve_at(role, "mup", m_d, m_rho, train).lr for role in Role}
    assert lr[Role.HIDDEN] == pytest.approx(HPS.lr)
    for role in (Role.EMBEDDING, Role.VECTOR, Role.READOUT):
        assert lr[role] == pytest.approx(HPS.lr * m_d)


@pytest.mark.parametrize(("m_d", "m_rho"), SHAPES)
def test_weight_decay_modes(m_d, m_rho):
    coupled = resolve_at(Role.HIDDEN, "supar", m_d, m_rho, TrainConfig(weight_decay_mode="coupled"))
    independent = resolve_at(Role.HIDDEN, "supar", m_d, m_rho)
    assert coupled.weight_decay == HPS.weight_decay  # lr·wd shrinks with the group's LR
    assert independent.lr * independent.weight_decay == pytest.approx(HPS.lr * HPS.weight_decay)
    vector = resolve_at(Role.VECTOR, "supar", m_d, m_rho)
    assert vector.weight_decay == 0


@pytest.mark.parametrize(("m_d", "m_rho"), SHAPES)
def test_ablations_decay_and_attention_follow_their_halves(m_d, m_rho):
    """supar-lr's independent decay follows its (SμPar) hidden LR, supar-init's its (SP) one;
    the attention scale is part of the init rule: μP's under supar-init, SP's under supar-lr."""
    for name in ("supar-init", "supar-lr"):
        hp = resolve_at(Role.HIDDEN, name, m_d, m_rho)
        assert hp.lr * hp.weight_decay == pytest.approx(HPS.lr * HPS.weight_decay)
    assert resolve_at(Role.HIDDEN, "supar-init", m_d, m_rho).weight_decay == HPS.weight_decay
    lr_only = resolve_at(Role.HIDDEN, "supar-lr", m_d, m_rho)
    assert lr_only.weight_decay == pytest.approx(HPS.weight_decay * m_d * m_rho)
    scale = {n: attention_scale(PARAMETERIZATIONS[n], 64, 16) for n in ("supar-init", "supar-lr")}
    assert scale == {"supar-init": pytest.approx(4 / 64), "supar-lr": 1 / 8}


def test_ablations_take_adam_sgd_and_muon_lrs_together():
    init_only, lr_only = PARAMETERIZATIONS["supar-init"], PARAMETERIZATIONS["supar-lr"]
    for role in Role:
        sp, supar = PARAMETERIZATIONS["sp"].rule(role), PARAMETERIZATIONS["supar"].rule(role)
        assert (init_only.rule(role).sgd_lr, init_only.rule(role).muon_lr) == (
            sp.sgd_lr,
            sp.muon_lr,
        )
        assert (lr_only.rule(role).sgd_lr, lr_only.rule(role).muon_lr) == (
            supar.sgd_lr,
            supar.muon_lr,
        )


KAPPA = dataclasses.replace(HPS, lr_emb_ratio=4.0)


@pytest.mark.parametrize("p", ["sp", "mup", "supar"])
@pytest.mark.parametrize(("m_d", "m_rho"), SHAPES)
@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_kappa_multiplies_the_embedding_and_readout_lrs_only(p, m_d, m_rho, optimizer):
    """η_emb = κ·η on top of the rule: embeddings and readout × 4; hidden and vectors as at
    κ = 1. Independent decay keeps lr·wd = η·λ; init, multipliers and ε do not move."""
    train = TrainConfig(optimizer=optimizer, scale_eps=True)
    for role in Role:
        spec = ParamSpec(role, density=m_rho)
        args = ("w", (2, 2), spec, PARAMETERIZATIONS[p])
        plain = resolve(*args, HPS, BASE, int(m_d * 16), train)
        kappa = resolve(*args, KAPPA, BASE, int(m_d * 16), train)
        factor = 4.0 if role in (Role.EMBEDDING, Role.READOUT) else 1.0
        assert kappa.lr == pytest.approx(factor * plain.lr, rel=1e-12)
        assert kappa.lr * kappa.weight_decay == pytest.approx(plain.lr * plain.weight_decay)
        same = ("init_std", "multiplier", "eps")
        assert [getattr(kappa, f) for f in same] == [getattr(plain, f) for f in same]
    embedding, hidden = (
        resolve("w", (2, 2), ParamSpec(role, density=m_rho), PARAMETERIZATIONS["supar"], KAPPA,
                BASE, int(m_d * 16), ADAMW)
        for role in (Role.EMBEDDING, Role.HIDDEN)
    )  # fmt: skip
    assert (embedding.lr, hidden.lr) == pytest.approx((4 * HPS.lr, HPS.lr / (m_d * m_rho)))


def test_eps_scaling_follows_hidden_lr():
    hp = resolve_at(Role.HIDDEN, "supar", 8, 0.25, TrainConfig(scale_eps=True, eps=1e-8))
    assert hp.eps == pytest.approx(1e-8 / (8 * 0.25))


def test_attention_scale():
    sp, mup = PARAMETERIZATIONS["sp"], PARAMETERIZATIONS["mup"]
    assert attention_scale(sp, 64, 32) == 1 / math.sqrt(64)
    assert attention_scale(mup, 64, 32) == pytest.approx(math.sqrt(32) / 64)
    for d in (8, 24, 32, 64, 100):  # bit-identical to SP at the base head size
        assert attention_scale(mup, d, d) == attention_scale(sp, d, d)


def test_each_parameter_scales_with_its_own_density():
    """m_rho = the parameter's layer density / base density; never-sparse parameters: 1."""
    base = BaseShape(width=16, density=0.5)
    supar, train = PARAMETERIZATIONS["supar"], TrainConfig()
    lr = {
        density: resolve(
            "w", (2, 2), ParamSpec(Role.HIDDEN, density=density), supar, HPS, base, 16, train
        ).lr
        for density in (0.5, 0.125, 1.0)
    }
    assert lr == pytest.approx({0.5: HPS.lr, 0.125: HPS.lr * 4, 1.0: HPS.lr / 2})
    dense = resolve("w", (2, 2), ParamSpec(Role.HIDDEN), supar, HPS, base, 16, train)
    assert dense.lr == HPS.lr and dense.density == 1.0


def test_parameterization_registry_suggests_the_closest_name():
    assert parameterization("mup") is PARAMETERIZATIONS["mup"]
    with pytest.raises(
        ConfigError, match=r"unknown parameterization 'supr' \(did you mean 'supar'"
    ):
        parameterization("supr")
    for bad in ("xyz", {}, None):  # any YAML value
        with pytest.raises(ConfigError, match="expected one of sp, mup, supar"):
            parameterization(bad)
