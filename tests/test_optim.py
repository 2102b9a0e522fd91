"""Optimizer groups and schedules: per-group μP multipliers survive scheduling."""

import dataclasses

import pytest
import torch

from hptransfer.config import TrainConfig
from hptransfer.errors import ConfigError
from hptransfer.models import build_model, plan_parameters
from hptransfer.optim import build_optimizer, build_schedule, lr_factor_at
from hptransfer.param import BaseShape
from hptransfer.train import train_step
from tests.conftest import tiny_gpt_run


def wide_sparse_run(**train):
    run = tiny_gpt_run(input_size=32, density=0.5)
    return dataclasses.replace(
        run, base=BaseShape(width=8), train=dataclasses.replace(run.train, **train)
    )


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
def test_schedule_scales_groups_relatively(schedule):
    run = wide_sparse_run(steps=20, warmup_steps=5, schedule=schedule)
    model = build_model(run)
    opt = build_optimizer(model, plan_parameters(model, run), run.train)
    sched = build_schedule(opt, run.train)
    initial = [g["initial_lr"] for g in opt.param_groups]
    assert len(set(initial)) > 1  # hidden groups differ from embeddings under SμPar
    for step in range(run.train.steps):
        factor = lr_factor_at(step, run.train)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([lr * factor for lr in initial])
        opt.step()
        sched.step()


def test_schedule_shape():
    train = TrainConfig(steps=100, warmup_steps=10, final_lr_ratio=0.1)
    assert lr_factor_at(0, train) == pytest.approx(0.1)
    assert lr_factor_at(9, train) == pytest.approx(1.0)
    assert lr_factor_at(10, train) == pytest.approx(1.0)
    assert lr_factor_at(100, train) == pytest.approx(0.1)
    assert 0.1 < lr_factor_at(55, train) < 1


def test_every_parameter_in_exactly_one_group():
    run = wide_sparse_run()
    model = build_model(run)
    opt = build_optimizer(model, plan_parameters(model, run), run.train)
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())


def test_group_hps_match_the_plan():
    run = wide_sparse_run(weight_decay_mode="coupled")
    model = build_model(run)
    plans = {p.name: p for p in plan_parameters(model, run)}
    opt = build_optimizer(model, list(plans.values()), run.train)
    for group in opt.param_groups:
        for name in group["names"]:
            assert group["lr"] == plans[name].lr
            assert group["weight_decay"] == plans[name].weight_decay


def test_sgd_optimizer():
    run = wide_sparse_run(optimizer="sgd")
    model = build_model(run)
    opt = build_optimizer(model, plan_parameters(model, run), run.train)
    assert isinstance(opt, torch.optim.SGD)


def _sparse_gpt_and_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    run = tiny_gpt_run(input_size=32, output_size=32, density=0.25)
    model = build_model(run)
    return model, build_optimizer(model, plan_parameters(model, run), run.train)


def test_adam_on_plain_cpu_tensors_is_fused():
    """The fused kernel: several times faster on the CPU than foreach, whose sqrt is slow on
    the exact zeros a sparse layer's second moment holds under its mask."""
    _, optimizer = _sparse_gpt_and_optimizer()
    assert optimizer.defaults["fused"] is True


def test_fused_adam_keeps_masked_weights_zero():
    model, optimizer = _sparse_gpt_and_optimizer()
    x = torch.randint(32, (2, 16))
    for _ in range(3):
        model(x).logsumexp(-1).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    masked = [m for m in model.modules() if getattr(m, "mask", None) is not None]
    assert masked
    for module in masked:
        assert torch.all(module.weight[~module.mask.bool()] == 0)


def _grad_norm_after_a_step(grad_clip: float | None) -> float:
    run = tiny_gpt_run(input_size=32, output_size=32)
    torch.manual_seed(0)
    model = build_model(run)
    optimizer = build_optimizer(model, plan_parameters(model, run), run.train)
    x = torch.randint(32, (2, run.data.seq_len), generator=torch.Generator().manual_seed(1))
    train_step(model, optimizer, [(x, x.roll(-1, 1))], grad_clip)
    return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))


@pytest.mark.parametrize("off", [None, 0, 0.0])
def test_grad_clip_null_or_0_turns_clipping_off(off):
    assert TrainConfig(grad_clip=off) == TrainConfig(grad_clip=None)  # one hash for "off"
    assert TrainConfig().grad_clip == 1.0  # the default clips
    unclipped = _grad_norm_after_a_step(TrainConfig(grad_clip=off).grad_clip)
    assert unclipped > 0.01
    assert _grad_norm_after_a_step(0.01) == pytest.approx(0.01, rel=1e-4)
    with pytest.raises(ConfigError, match=r"train.grad_clip must be >= 0 \(0 or null"):
        TrainConfig(grad_clip=-1.0)
