"""Depth rules (CompleteP, docs/parameterizations.md#depth-completep): the table written out
independently here, their reductions (α = 0 is today's rules; the base shape is bit-identical within
each α), the residual branch multiplier, and bad input."""

import dataclasses
import math

import pytest
import torch

from hptransfer.cli.main import main
from hptransfer.config import RunConfig, TrainConfig
from hptransfer.errors import ConfigError
from hptransfer.models import build_model, describe, forward_scales, param_specs
from hptransfer.param import BaseHPs, BaseShape, ParamSpec, Role, parameterization, resolve
from hptransfer.sweep.parse import parse_spec
from hptransfer.train import train
from tests.conftest import tiny_gpt_run, tiny_mlp_run

HPS = BaseHPs(lr=0.01, init_std=0.02, alpha_in=3.0, alpha_out=5.0, weight_decay=0.1)
BASE = BaseShape(width=16, density=1.0, depth=2)
EPS = 1e-8
# (m_d, m_rho, m_L)
SHAPES = [(1, 1, 1), (4, 1, 4), (1, 0.25, 8), (8, 0.125, 2), (2, 1 / 64, 16), (0.5, 0.5, 0.5)]
# (what the parameter is, its role, inside a residual block)
KINDS = {
    "embedding": (Role.EMBEDDING, False),
    "block norm or bias": (Role.VECTOR, True),
    "hidden weight": (Role.HIDDEN, True),
    "final norm": (Role.VECTOR, False),
    "readout": (Role.READOUT, False),
}


def resolve_at(p: str, kind: str, shape, train: TrainConfig, init_scale: float = 1.0):
    m_d, m_rho, m_L = shape
    role, block = KINDS[kind]
    hidden = role is Role.HIDDEN  # a residual output projection: GPT-2's init_scale
    spec = ParamSpec(
        role,
        density=m_rho if hidden else None,
        init_scale=init_scale if hidden else 1.0,
        block=block,
    )
    width, depth = round(m_d * BASE.width), round(m_L * BASE.depth)
    return resolve("w", (2, 2), spec, parameterization(p), HPS, BASE, width, train, depth)


def spec_depth_table(width_p: str, alpha: float, kind: str, shape):
    """(init variance, Adam LR, Adam ε with ε scaling on, weight decay in the independent mode) from
    docs/parameterizations.md's depth table; SμPar's hidden rows put m_d·m_rho in m_d's place."""
    m_d, m_rho, m_L = shape
    fan = m_d * m_rho if width_p == "supar" else m_d
    s2, eta, lam = HPS.init_std**2, HPS.lr, HPS.weight_decay
    return {
        "embedding": (s2, eta, EPS, lam),
        "block norm or bias": (None, eta * m_L ** (alpha - 1), EPS / (m_d * m_L**alpha), 0.0),
        "hidden weight": (
            s2 / fan,
            eta / fan * m_L ** (alpha - 1),
            EPS / (fan * m_L**alpha),
            lam * fan,
        ),
        "final norm": (None, eta, EPS, 0.0),
        "readout": (s2, eta, EPS, lam),
    }[kind]


@pytest.mark.parametrize("width_p", ["mup", "supar"])
@pytest.mark.parametrize("alpha", [0.5, 1.0])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_depth_rules_match_spec_table(width_p, alpha, shape, kind):
    name = f"{width_p}+completep" + ("" if alpha == 1 else f"={alpha}")
    hp = resolve_at(name, kind, shape, TrainConfig(scale_eps=True), init_scale=0.5)
    var, lr, eps, wd = spec_depth_table(width_p, alpha, kind, shape)
    if var is not None:  # the GPT-2 init factor (0.5 here) is dropped under depth rules
        assert hp.init_std == pytest.approx(math.sqrt(var), rel=1e-12)
    assert hp.lr == pytest.approx(lr, rel=1e-12)
    assert hp.eps == pytest.approx(eps, rel=1e-12)
    assert hp.weight_decay == pytest.approx(wd, rel=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_depth_eps_without_eps_scaling_has_only_the_depth_factor(shape, kind):
    hp = resolve_at("supar+completep=0.5", kind, shape, TrainConfig(scale_eps=False))
    block = KINDS[kind][1]
    assert hp.eps == pytest.approx(EPS / shape[2] ** 0.5 if block else EPS, rel=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_weight_decay_times_lr_is_depth_independent_at_alpha_one(shape):
    base = resolve_at("supar+completep", "hidden weight", (1, 1, 1), TrainConfig())
    hp = resolve_at("supar+completep", "hidden weight", shape, TrainConfig())
    assert hp.lr * hp.weight_decay == pytest.approx(base.lr * base.weight_decay, rel=1e-12)
    coupled = resolve_at(
        "supar+completep", "hidden weight", shape, TrainConfig(weight_decay_mode="coupled")
    )
    assert coupled.weight_decay == HPS.weight_decay


@pytest.mark.parametrize("width_p", ["sp", "mup", "supar"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("scale_eps", [False, True])
def test_alpha_zero_is_todays_rules_exactly(width_p, shape, kind, scale_eps):
    train = TrainConfig(scale_eps=scale_eps)
    assert parameterization(f"{width_p}+completep=0") is parameterization(width_p)
    today = resolve_at(width_p, kind, shape, train, init_scale=0.5)
    role, _ = KINDS[kind]
    outside = dataclasses.replace(today, role=role)
    assert today == outside  # the block mark changes nothing without depth rules
    assert resolve_at(f"{width_p}+completep=0", kind, shape, train, init_scale=0.5) == today


def deep_run(p: str, depth: int = 2, **model) -> RunConfig:
    run = tiny_gpt_run(depth=depth, input_size=32, **model)
    return dataclasses.replace(run, parameterization=p, base=BaseShape(width=32, depth=2))


@pytest.mark.parametrize("alpha", ["", "=0.5"])
def test_parameterizations_identical_at_the_base_shape_within_alpha(alpha):
    curves = [train(deep_run(p + "+completep" + alpha)).curve for p in ("sp", "mup", "supar")]
    assert curves[0] == curves[1] == curves[2]


def test_base_shape_differs_from_todays_only_by_the_residual_init():
    today, ruled = (describe(deep_run(p)) for p in ("mup", "mup+completep"))
    for a, b in zip(today, ruled, strict=True):
        residual_out = a.name.endswith(("proj.weight", "down.weight"))
        assert dataclasses.replace(a, init_std=b.init_std) == b
        assert (a.init_std == b.init_std * 0.5) if residual_out else a.init_std == b.init_std


@pytest.mark.parametrize(
    ("p", "branch"), [("mup", 1.0), ("mup+completep", 0.25), ("mup+completep=0.5", 0.5)]
)
@pytest.mark.parametrize("block_kind", ["gpt2", "llama"])
def test_each_block_branch_is_scaled_by_m_l_to_the_minus_alpha(p, branch, block_kind):
    run = deep_run(p, depth=8, block=block_kind)
    model = build_model(run)
    assert forward_scales(run).residual == branch
    assert [block.residual for block in model.blocks] == [branch] * 8
    block, x = model.blocks[0], torch.randn(1, 4, 32)
    with torch.no_grad():
        mid = x + branch * block.attn(block.ln_attn(x))
        expected = mid + branch * block.ffn(block.ln_ffn(mid))
        assert torch.allclose(block(x), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("block_kind", ["gpt2", "llama"])
def test_block_parameters_are_marked(block_kind):
    specs = param_specs(build_model(deep_run("mup+completep", block=block_kind), device="meta"))
    marked = {name for name, spec in specs.items() if spec.block}
    assert marked == {name for name in specs if name.startswith("blocks.")}
    assert {"tok_emb.weight", "ln_f.weight", "head.weight"} <= specs.keys() - marked


def test_names_are_canonical_and_recorded():
    assert parameterization("supar+completep=1").name == "supar+completep"
    assert parameterization("mup+completep=0.50").name == "mup+completep=0.5"
    run = dataclasses.replace(tiny_gpt_run(), parameterization="mup+completep=1.0")
    assert run.parameterization == "mup+completep"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("mup+completep=2", "depth α must be in [0, 1]"),
        ("mup+completep=-0.5", "depth α must be in [0, 1]"),
        ("mup+completep=nan", "depth α must be in [0, 1]"),
        ("mup+completep=x", "depth α must be in [0, 1]"),
        ("mup+completep=", "the depth suffix is +completep"),
        ("mup+depth", "the depth suffix is +completep"),
        ("mpu+completep", "did you mean 'mup'"),
    ],
)
def test_bad_depth_names_are_refused(name, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("+", r"\+")):
        parameterization(name)


def test_mlp_has_no_residual_blocks():
    with pytest.raises(ConfigError, match="an mlp has none"):
        dataclasses.replace(tiny_mlp_run(), parameterization="mup+completep")
    with pytest.raises(ConfigError, match="an mlp has no residual blocks"):
        tiny_mlp_run().retarget(depth=4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "--to", "depth=0"], "--to depth must be a positive integer"),
        (["plan", "--to", "depth=2.5"], "bad --to value depth='2.5'"),
        (["plan", "-p", "mup+completep=1.5"], "depth α must be in [0, 1]; got 1.5"),
        (["plan", "--kind", "mlp", "--to", "depth=4"], "an mlp has no residual blocks"),
    ],
)
def test_bad_depth_input_is_one_line_exit_2(capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_plan_to_depth_shows_m_l_and_the_base_depth(capsys):
    args = ["plan", "-p", "supar+completep", "--width", "64", "--depth", "2"]
    assert main([*args, "--to", "width=256,depth=8,density=1/4"]) == 0
    out = capsys.readouterr().out
    assert "m_L = 4" in out and "depth 2)" in out and "blocks.7.ffn.down.weight" in out


def test_sweep_depth_axis_makes_cells_and_a_base_depth():
    raw = {
        "name": "d",
        "model": {"kind": "gpt", "width": 32, "depth": [2, 4], "heads": 2, "context": 16},
        "parameterization": ["mup", "mup+completep"],
        "search": {"space": {"lr": {"values": [0.01]}}},
    }
    spec = parse_spec(raw)
    assert [(c.parameterization, c.model.depth) for c in spec.cells] == [
        ("mup", 2), ("mup", 4), ("mup+completep", 2), ("mup+completep", 4)
    ]  # fmt: skip
    assert spec.base.depth == 2 and spec.to_dict()["model"]["depth"] == [2, 4]
    assert spec.cells[3].multipliers.depth == 2.0
    single = parse_spec({**raw, "model": {**raw["model"], "depth": 4}})
    assert single.base.depth is None and single.to_dict()["model"]["depth"] == 4
