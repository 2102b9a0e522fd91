"""Muon on the hidden matrices, AdamW on the rest: the rules, the optimizer, its state, bad input.

The rules are checked against ``docs/muon.md``: torch's Muon multiplies each matrix's LR by its
own shape adjustment √max(1, out/in), so the rule hands over η times the width/density factor
and nothing else; Adam's 1/m_d must never reach a Muon group.
"""

import copy
import dataclasses
import math

import pytest
import torch

from hptransfer.config import TrainConfig
from hptransfer.errors import ConfigError
from hptransfer.models import build_model, plan_parameters
from hptransfer.models.sparse import MaskedLinear
from hptransfer.optim import MuonAdamW, build_optimizer, build_schedule, spectral_norm
from hptransfer.param import BaseShape, Role, rules
from hptransfer.param.resolve import MUON_EPS, trains_with_muon
from hptransfer.plan import plan_rows
from hptransfer.runtime.identity import run_key
from hptransfer.train import train
from tests.conftest import tiny_gpt_run

ETA = 2.0**-6


def muon_run(p: str = "supar", width: int = 32, density: float = 1.0, **train_changes):
    run = tiny_gpt_run(width=width, density=density, input_size=32)
    train_config = dataclasses.replace(run.train, optimizer="muon", **train_changes)
    return dataclasses.replace(run, parameterization=p, train=train_config)


def plans_by_name(run):
    return {p.name: p for p in plan_parameters(build_model(run, device="meta"), run)}


@pytest.mark.parametrize(
    ("p", "density", "hidden_factor"),
    [
        ("sp", 1.0, 1.0),  # one global LR: torch's default use
        ("mup", 1.0, 1.0),  # the adjustment already meets the spectral condition in width
        ("mup", 0.25, 1.0),  # μP has no density rule
        ("supar", 0.25, 1.0),  # measured: no density factor (docs/muon.md)
    ],
)
def test_muon_groups_get_eta_times_the_rule_only(p, density, hidden_factor):
    """Width 128 over a base of 32 (m_d = 4): Muon groups get η·factor, never η/m_d, while the
    AdamW groups keep their Adam rule (SP and μP: η for embeddings, norms and readout)."""
    run = dataclasses.replace(muon_run(p, width=128, density=density), base=BaseShape(width=32))
    plans = plans_by_name(run)
    muon = {n: hp for n, hp in plans.items() if hp.optimizer == "muon"}
    assert {hp.role for hp in muon.values()} == {Role.HIDDEN}
    assert all(len(hp.shape) == 2 for hp in muon.values())
    for hp in muon.values():
        assert hp.lr == pytest.approx(ETA * hidden_factor, rel=1e-12)
        assert hp.eps == MUON_EPS
    for hp in plans.values():
        if hp.optimizer is None:
            assert hp.lr == pytest.approx(ETA)  # no role but hidden has an Adam width rule


@pytest.mark.parametrize(
    ("name", "shape", "adjustment"),
    [
        ("blocks.0.attn.qkv.weight", (384, 128), math.sqrt(3)),
        ("blocks.0.ffn.up.weight", (512, 128), 2.0),
        ("blocks.0.ffn.down.weight", (128, 512), 1.0),
    ],
)
def test_one_step_applies_torch_adjustment_once(name, shape, adjustment):
    """The applied update of a μP Muon matrix at m_d = 4 has spectral norm η·√max(1, out/in)
    (Newton–Schulz leaves singular values in about [0.7, 1.2]): with Adam's 1/m_d on top it
    would be 4× smaller, with 'match_rms_adamw' 0.2·√max(out, in) ≈ 4.5× larger."""
    run = dataclasses.replace(
        muon_run("mup", width=128, weight_decay_mode="coupled"), base=BaseShape(width=32)
    )
    run = dataclasses.replace(run, hps=dataclasses.replace(run.hps, weight_decay=0.0))
    torch.manual_seed(0)
    model = build_model(run)
    weight = dict(model.named_parameters())[name]
    assert tuple(weight.shape) == shape
    optimizer = build_optimizer(model, plan_parameters(model, run), run.train)
    before = weight.detach().clone()
    model(torch.randint(0, 32, (4, 16))).float().pow(2).mean().backward()
    optimizer.step()
    applied = torch.linalg.matrix_norm(weight.detach() - before, ord=2).item() / ETA
    assert 0.6 * adjustment < applied < 1.3 * adjustment


def test_masked_entries_stay_exactly_zero_under_muon():
    run = muon_run("supar", density=0.25)
    run = dataclasses.replace(run, hps=dataclasses.replace(run.hps, weight_decay=0.1))
    model = build_model(run)
    optimizer = build_optimizer(model, plan_parameters(model, run), run.train)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randint(0, 32, (4, 16))).float().pow(2).mean().backward()
        optimizer.step()
    sparse = [m for m in model.modules() if isinstance(m, MaskedLinear) and m.mask is not None]
    assert sparse
    for layer in sparse:
        assert torch.count_nonzero(layer.weight[~layer.mask]) == 0
        assert torch.count_nonzero(layer.weight[layer.mask]) > 0.99 * layer.mask.sum()


def _one_muon_step(mask: torch.Tensor | None, rescale: bool) -> torch.Tensor:
    """The step one Muon update makes on a 48×32 weight (masked by ``mask`` if given)."""
    g = torch.Generator().manual_seed(0)
    keep = torch.ones(48, 32) if mask is None else mask
    weight = torch.nn.Parameter(torch.randn(48, 32, generator=g) * keep)
    weight.grad = torch.randn(48, 32, generator=g) * keep
    group = {"params": [weight], "lr": 0.1, "weight_decay": 0.1, "optimizer": "muon"}
    masks = {} if mask is None else {weight: mask}
    optimizer = MuonAdamW([group], betas=(0.9, 0.95), momentum=0.0, masks=masks, rescale=rescale)
    decayed = weight.detach() * (1 - 0.1 * 0.1)
    optimizer.step()
    return weight.detach() - decayed


def test_rescale_scales_the_masked_update_to_the_dense_updates_spectral_norm():
    mask = (torch.rand(48, 32, generator=torch.Generator().manual_seed(1)) < 0.25).float()
    masked, rescaled = _one_muon_step(mask, False), _one_muon_step(mask, True)
    assert torch.count_nonzero(rescaled * (1 - mask)) == 0  # a masked entry stays zero
    scale = rescaled.norm() / masked.norm()
    assert torch.allclose(rescaled, scale * masked, atol=1e-6) and scale < 1
    dense = torch.linalg.matrix_norm(_one_muon_step(None, False), ord=2)
    assert float(torch.linalg.matrix_norm(rescaled, ord=2)) == pytest.approx(float(dense), rel=0.05)


def test_spectral_norm_by_power_iteration_matches_the_svd():
    g = torch.Generator().manual_seed(2)
    for matrix in (torch.randn(64, 96, generator=g), torch.randn(96, 8, generator=g)):
        exact = float(torch.linalg.matrix_norm(matrix, ord=2))
        assert float(spectral_norm(matrix)) == pytest.approx(exact, rel=0.02)


def test_the_masked_update_setting_enters_hashes_only_when_not_the_default():
    assert "muon_masked_update" not in TrainConfig(optimizer="muon").to_dict()
    rescaled = muon_run("supar", density=0.25, muon_masked_update="rescale")
    assert run_key(rescaled) != run_key(muon_run("supar", density=0.25))
    dense = muon_run("supar", muon_masked_update="rescale")  # no mask: the same model
    assert run_key(dense) == run_key(muon_run("supar"))


def _steps(model, optimizer, schedule, n, seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        optimizer.zero_grad()
        model(torch.randint(0, 32, (4, 16), generator=g)).float().pow(2).mean().backward()
        optimizer.step()
        schedule.step()


def test_state_dict_round_trip_continues_bit_for_bit():
    """Muon's momentum and AdamW's moments survive state_dict → load_state_dict: the resumed
    run's weights equal an uninterrupted run's exactly."""
    run = muon_run("supar", density=0.5, steps=8, warmup_steps=2)

    def fresh():
        torch.manual_seed(1)
        model = build_model(run)
        optimizer = build_optimizer(model, plan_parameters(model, run), run.train)
        return model, optimizer, build_schedule(optimizer, run.train)

    model, optimizer, schedule = fresh()
    _steps(model, optimizer, schedule, 3, seed=0)
    state = copy.deepcopy((model.state_dict(), optimizer.state_dict(), schedule.state_dict()))
    _steps(model, optimizer, schedule, 3, seed=1)

    resumed, optimizer2, schedule2 = fresh()
    resumed.load_state_dict(state[0])
    optimizer2.load_state_dict(state[1])
    schedule2.load_state_dict(state[2])
    assert {g.get("optimizer") for g in optimizer2.param_groups} == {None, "muon"}
    _steps(resumed, optimizer2, schedule2, 3, seed=1)
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_parameterizations_identical_at_base_shape_under_muon():
    results = [train(muon_run(p)) for p in ("sp", "mup", "supar")]
    curves = [[(pt["train_loss"], pt["val_loss"]) for pt in r.curve] for r in results]
    assert curves[0] == curves[1] == curves[2]


def test_muon_trains_and_changes_the_run_key():
    adamw = tiny_gpt_run(input_size=32)
    muon = muon_run("supar")
    assert run_key(adamw) != run_key(muon)
    result = train(muon)
    assert math.isfinite(result.curve[-1]["val_loss"])


def test_adamw_hashes_do_not_see_muon_fields():
    """Runs written before Muon keep their keys: Muon's settings enter hashes only under Muon."""
    assert "muon_momentum" not in TrainConfig().to_dict()
    assert "muon_momentum" in TrainConfig(optimizer="muon").to_dict()
    hp = next(iter(plans_by_name(tiny_gpt_run(input_size=32)).values()))
    assert "optimizer" not in hp.to_dict()


def test_plan_shows_each_parameters_optimizer_under_muon():
    rows = {row["name"]: row for row in plan_rows(muon_run("supar", density=0.5))}
    assert rows["blocks.0.attn.qkv.weight"]["optimizer"] == "muon"
    assert rows["tok_emb.weight"]["optimizer"] == "adamw"
    assert "optimizer" not in next(iter(plan_rows(tiny_gpt_run(input_size=32))))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"optimizer": "muon", "momentum": 0.5}, "train.momentum is sgd's setting, not muon's"),
        ({"optimizer": "adamw", "muon_momentum": 0.9}, "train.muon_momentum is muon's setting"),
        ({"optimizer": "muon", "muon_momentum": 1.0}, "train.muon_momentum must be in [0, 1)"),
        ({"optimizer": "adamw", "muon_masked_update": "rescale"}, "is muon's setting, not adamw"),
        ({"optimizer": "muon", "muon_masked_update": "scale"}, "train.muon_masked_update must"),
    ],
)
def test_settings_of_another_optimizer_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(")", r"\)")):
        TrainConfig(**changes)


def test_a_vector_forced_into_muon_is_refused():
    with pytest.raises(ConfigError, match=r"bias of shape \[64\] has role hidden.*role vector"):
        trains_with_muon("blocks.0.attn.bias", (64,), Role.HIDDEN, rules.SUPAR)


def test_a_vector_forced_into_muon_through_own_roles_is_refused():
    from torch import nn

    from hptransfer import own

    def build(width: int) -> nn.Module:
        return nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, width))

    with pytest.raises(ConfigError, match=r"2\.bias of shape \[64\] has role hidden.*matrices"):
        own.parametrize(build(64), lambda: build(16), optimizer="muon", roles={"2.bias": "hidden"})
