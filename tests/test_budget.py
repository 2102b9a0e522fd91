"""The target budget: Complete(d)P's factors against their formulas, bit identity at the
proxy's budget, horizons in steps and tokens, warmup as a fraction of the run."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hptransfer.budget import (
    Horizon,
    TargetShape,
    TargetSpec,
    at_horizon,
    budget_multipliers,
    budgeted,
    move,
    target_horizon,
)
from hptransfer.config import RunConfig, TrainConfig
from hptransfer.errors import ConfigError
from hptransfer.param import BaseHPs
from hptransfer.param.base import BudgetMultipliers
from hptransfer.param.rules import BUDGET_NONE, COMPLETEDP, fitted_rule

PROXY = Horizon(steps=150, batch=16, row_tokens=64)
HPS = BaseHPs(lr=2.0**-7.3, weight_decay=0.1)
TRAIN = TrainConfig(steps=150, warmup_steps=15, eps=1e-8, betas=(0.9, 0.95))
ratios = st.sampled_from([1 / 8, 1 / 4, 1 / 2, 1.0, 2.0, 3.0, 4.0, 27.0, 100.0])


@given(m_d=ratios, m_b=ratios)
def test_completedp_factors_are_the_formulas(m_d, m_b):
    hps, train = move(COMPLETEDP, BudgetMultipliers(tokens=m_d, batch=m_b), HPS, TRAIN)
    assert hps.lr == pytest.approx(HPS.lr * math.sqrt(m_b / m_d), rel=1e-12)
    assert hps.weight_decay == pytest.approx(HPS.weight_decay * math.sqrt(m_b / m_d), rel=1e-12)
    assert train.eps == pytest.approx(TRAIN.eps * math.sqrt(m_d / m_b), rel=1e-12)
    for beta, moved in zip(TRAIN.betas, train.betas, strict=True):
        assert moved == pytest.approx(max(0.0, 1 - (1 - beta) * m_b / m_d), abs=1e-12)
    # AdamW's timescale 1/(η·λ), in steps, stays a fixed fraction of the run (steps ∝ m_D/m_B)
    assert 1 / (hps.lr * hps.weight_decay) == pytest.approx(
        m_d / m_b / (HPS.lr * HPS.weight_decay), rel=1e-12
    )
    assert (hps.init_std, hps.alpha_in, hps.alpha_out) == (
        HPS.init_std, HPS.alpha_in, HPS.alpha_out
    )  # fmt: skip


def test_factors_are_exactly_one_at_the_proxy_budget():
    for rule in (COMPLETEDP, BUDGET_NONE, fitted_rule(0.37)):
        assert move(rule, BudgetMultipliers(), HPS, TRAIN) == (HPS, TRAIN)


def test_a_budget_equal_to_the_proxys_is_bit_identical_to_none():
    run = RunConfig(train=TRAIN, hps=HPS)
    same = TargetSpec(tokens=150 * 16 * 64, batch=16)
    assert budgeted(run, PROXY, same, COMPLETEDP) == run
    assert budgeted(run, PROXY, TargetSpec(steps=150), COMPLETEDP) == run
    assert budgeted(run, PROXY, TargetSpec(shape=TargetShape(width=64)), COMPLETEDP) is run


def test_fitted_rule_moves_lr_only_by_the_power_law():
    hps, train = move(fitted_rule(0.25), BudgetMultipliers(tokens=16.0, batch=2.0), HPS, TRAIN)
    assert hps.lr == pytest.approx(HPS.lr * 16**-0.25)
    assert (hps.weight_decay, train) == (HPS.weight_decay, TRAIN)


def test_target_horizon_from_tokens_steps_or_the_proxys():
    assert target_horizon(PROXY, TargetSpec()) == PROXY
    assert target_horizon(PROXY, TargetSpec(steps=600, batch=32)) == Horizon(600, 32, 64)
    # tokens round down to whole steps of the target's batch
    horizon = target_horizon(PROXY, TargetSpec(tokens=4 * PROXY.tokens + 100, batch=32))
    assert (horizon.steps, horizon.tokens) == (300, 4 * PROXY.tokens)
    m = budget_multipliers(PROXY, horizon)
    assert (m.tokens, m.batch) == (4.0, 2.0)


def test_tokens_fewer_than_one_batch_are_refused():
    with pytest.raises(ConfigError, match=r"tokens=1,000 is fewer than one batch \(32 rows"):
        target_horizon(PROXY, TargetSpec(tokens=1000, batch=32))
    with pytest.raises(ConfigError, match="tokens or steps, not both"):
        TargetSpec(tokens=10_000, steps=3)


def test_warmup_keeps_its_fraction_and_the_run_trains_the_targets_batch():
    run = RunConfig(train=TRAIN, hps=HPS)
    moved = budgeted(run, PROXY, TargetSpec(tokens=4 * PROXY.tokens, batch=32), COMPLETEDP)
    assert (moved.train.steps, moved.train.warmup_steps, moved.data.batch_size) == (300, 30, 32)
    assert moved.hps.lr == pytest.approx(HPS.lr * math.sqrt(2 / 4))
    assert at_horizon(TRAIN, 1350) == dataclasses.replace(TRAIN, steps=1350, warmup_steps=135)
    assert at_horizon(TRAIN, 150) is TRAIN
