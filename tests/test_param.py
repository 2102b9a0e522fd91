"""The parameterization rules against SPEC.md's table, written out independently here."""

import math

import pytest

from hptransfer.config import BaseHPs, Multipliers, TrainConfig
from hptransfer.param import PARAMETERIZATIONS, ParamSpec, Role, attention_scale, resolve

HPS = BaseHPs(lr=0.01, init_std=0.02, alpha_in=3.0, alpha_out=5.0, weight_decay=0.1)
SHAPES = [(1, 1), (4, 1), (1, 0.125), (8, 0.25), (32, 1 / 64)]


def spec_table(p: str, role: Role, m_d: float, m_rho: float) -> tuple[float, float, float]:
    """(init variance, Adam LR, forward multiplier) straight from SPEC.md."""
    s2, eta = HPS.init_std**2, HPS.lr
    hidden = {
        "sp": (s2, eta),
        "mup": (s2 / m_d, eta / m_d),
        "supar": (s2 / (m_d * m_rho), eta / (m_d * m_rho)),
    }
    readout_mult = HPS.alpha_out if p == "sp" else HPS.alpha_out / m_d
    return {
        Role.EMBEDDING: (s2, eta, HPS.alpha_in),
        Role.HIDDEN: (*hidden[p], 1.0),
        Role.READOUT: (s2, eta, readout_mult),
        Role.VECTOR: (s2, eta, 1.0),
    }[role]


@pytest.mark.parametrize("p", ["sp", "mup", "supar"])
@pytest.mark.parametrize(("m_d", "m_rho"), SHAPES)
@pytest.mark.parametrize("role", list(Role))
def test_adam_rules_match_spec_table(p, m_d, m_rho, role):
    hp = resolve(
        "w",
        (2, 2),
        ParamSpec(role),
        PARAMETERIZATIONS[p],
        HPS,
        Multipliers(m_d, m_rho),
        TrainConfig(),
    )
    var, lr, mult = spec_table(p, role, m_d, m_rho)
    assert hp.init_std == pytest.approx(math.sqrt(var), rel=1e-12)
    assert hp.lr == pytest.approx(lr, rel=1e-12)
    assert hp.multiplier == pytest.approx(mult, rel=1e-12)


@pytest.mark.parametrize(("m_d", "m_rho"), SHAPES)
def test_mup_sgd_rules(m_d, m_rho):
    """μP with SGD (Tensor Programs V): hidden LR constant, input/vector LR × m_d, and the
    readout — written with the α_out/m_d multiplier — × m_d (Table 3's /m_d on W_eff)."""
    train = TrainConfig(optimizer="sgd")
    m = Multipliers(m_d, m_rho)
    lr = {
        role: resolve("w", (2, 2), ParamSpec(role), PARAMETERIZATIONS["mup"], HPS, m, train).lr
        for role in Role
    }
    assert lr[Role.HIDDEN] == pytest.approx(HPS.lr)
    for role in (Role.EMBEDDING, Role.VECTOR, Role.READOUT):
        assert lr[role] == pytest.approx(HPS.lr * m_d)


def test_supar_sgd_is_labelled_experimental():
    assert PARAMETERIZATIONS["supar"].sgd_experimental
    assert not PARAMETERIZATIONS["mup"].sgd_experimental


@pytest.mark.parametrize(("m_d", "m_rho"), SHAPES)
def test_weight_decay_modes(m_d, m_rho):
    m = Multipliers(m_d, m_rho)
    p = PARAMETERIZATIONS["supar"]
    coupled = resolve(
        "w", (2, 2), ParamSpec(Role.HIDDEN), p, HPS, m, TrainConfig(weight_decay_mode="coupled")
    )
    independent = resolve("w", (2, 2), ParamSpec(Role.HIDDEN), p, HPS, m, TrainConfig())
    assert coupled.weight_decay == HPS.weight_decay  # lr·wd shrinks with the group's LR
    assert independent.lr * independent.weight_decay == pytest.approx(HPS.lr * HPS.weight_decay)
    vector = resolve("b", (2,), ParamSpec(Role.VECTOR), p, HPS, m, TrainConfig())
    assert vector.weight_decay == 0


def test_eps_scaling_follows_hidden_lr():
    m = Multipliers(8, 0.25)
    train = TrainConfig(scale_eps=True, eps=1e-8)
    hp = resolve("w", (2, 2), ParamSpec(Role.HIDDEN), PARAMETERIZATIONS["supar"], HPS, m, train)
    assert hp.eps == pytest.approx(1e-8 / (8 * 0.25))


def test_attention_scale():
    sp, mup = PARAMETERIZATIONS["sp"], PARAMETERIZATIONS["mup"]
    assert attention_scale(sp, 64, 32) == 1 / math.sqrt(64)
    assert attention_scale(mup, 64, 32) == pytest.approx(math.sqrt(32) / 64)
    for d in (8, 24, 32, 64, 100):  # bit-identical to SP at the base head size
        assert attention_scale(mup, d, d) == attention_scale(sp, d, d)
