"""The LLaMA block (``model.block: llama``): the GPT-2 block's guarantees hold for it too."""

from __future__ import annotations

import dataclasses
import json
import math

import pandas as pd
import pytest
import torch

from hptransfer.analysis.coord_plot import activation_table, spread
from hptransfer.cli.main import main
from hptransfer.config import ModelConfig, RunConfig
from hptransfer.coord_check import check_run, coord_check_runs
from hptransfer.cost import estimate
from hptransfer.errors import ConfigError
from hptransfer.models import build_model, describe, param_specs
from hptransfer.models.llama import rotate, swiglu_hidden
from hptransfer.param import BaseShape, Role
from hptransfer.runtime.identity import config_hash
from hptransfer.train import train
from tests.conftest import tiny_gpt_run

SIGMA, ETA = 0.02, 2**-6


def llama_run(**model) -> RunConfig:
    run = tiny_gpt_run(block="llama", **model)
    return dataclasses.replace(run, model=run.model.replace(input_size=32))


def with_p(run: RunConfig, p: str, **model) -> RunConfig:
    return dataclasses.replace(run, parameterization=p, model=run.model.replace(**model))


def test_all_parameterizations_identical_at_base_shape():
    results = [train(with_p(llama_run(), p)) for p in ("sp", "mup", "supar")]
    curves = [[(pt["train_loss"], pt["val_loss"]) for pt in r.curve] for r in results]
    assert curves[0] == curves[1] == curves[2]


def test_supar_is_mup_at_density_one_and_differs_when_sparse():
    wide = dataclasses.replace(llama_run(), base=BaseShape(width=16))  # m_d = 2
    assert train(with_p(wide, "mup")).curve == train(with_p(wide, "supar")).curve
    sparse = [train(with_p(wide, p, density=0.25)).curve for p in ("mup", "supar")]
    assert sparse[0] != sparse[1]


def test_roles_by_layer_type_and_no_biases():
    model = build_model(llama_run(density=0.5))
    specs = param_specs(model)
    hidden = {"attn.qkv", "attn.proj", "ffn.gate", "ffn.up", "ffn.down"}
    for name, spec in specs.items():
        assert not name.endswith(".bias")
        layer = name.removeprefix("blocks.1.").removeprefix("blocks.0.").rsplit(".", 1)[0]
        if layer in hidden:
            assert (spec.role, spec.density) == (Role.HIDDEN, 0.5), name
        elif "ln" in layer:
            assert (spec.role, spec.fill) == (Role.VECTOR, 1.0), name
    assert specs["tok_emb.weight"].role is Role.EMBEDDING
    assert specs["head.weight"].role is Role.READOUT
    assert "pos_emb.weight" not in specs  # rotary positions instead
    assert specs["blocks.0.ffn.down.weight"].init_scale == pytest.approx(0.5)  # 1/√(2·depth)
    assert specs["blocks.0.ffn.gate.weight"].init_scale == 1.0
    norms = [m for m in model.modules() if isinstance(m, torch.nn.RMSNorm)]
    assert len(norms) == 5 and all((m.weight == 1).all() for m in norms)


@pytest.mark.parametrize("p", ["sp", "mup", "supar"])
def test_plan_matches_spec_at_a_wide_sparse_target(p):
    run = dataclasses.replace(llama_run(), parameterization=p, hps=dataclasses.replace(
        llama_run().hps, lr=ETA, init_std=SIGMA))  # fmt: skip
    target = run.retarget(width=256, density=0.125)
    rows = {row.name: row for row in describe(target)}
    m_d, m_rho = 256 / 32, 0.125
    fan = {"sp": 1, "mup": m_d, "supar": m_d * m_rho}[p]
    hidden = swiglu_hidden(target.model)
    assert hidden == 2 * 4 * 256 // 3
    for name, shape in (("gate", (hidden, 256)), ("up", (hidden, 256)), ("down", (256, hidden))):
        row = rows[f"blocks.1.ffn.{name}.weight"]
        assert row.shape == shape and row.density == m_rho
        scale = 0.5 if name == "down" else 1.0
        assert row.init_std == pytest.approx(SIGMA * scale / math.sqrt(fan))
        assert row.lr == pytest.approx(ETA / fan)
    assert rows["head.weight"].multiplier == pytest.approx(1 if p == "sp" else 1 / m_d)
    assert rows["blocks.0.ln_attn.weight"].lr == pytest.approx(ETA)


def test_estimate_counts_swiglu_parameters_and_flops():
    run = llama_run(width=64, heads=4)
    est = estimate(run, flops_per_s=1e9)
    model = build_model(run)
    assert est.params == sum(p.numel() for p in model.parameters())
    c, h, v, depth = 64, swiglu_hidden(run.model), 32, 2
    matmul = depth * (3 * c * c + c * c + 3 * c * h) + v * c  # embedding: a lookup
    tokens = run.data.batch_size * run.data.seq_len
    attention = 6 * depth * run.data.seq_len * c
    assert est.flops_per_step == tokens * (6 * matmul + attention)


def test_rotary_scores_depend_on_relative_position_only():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 8, generator=g), torch.randn(1, 1, 1, 8, generator=g)
    q_all, k_all = (rotate(t.expand(1, 1, 12, 8)) for t in (q, k))  # the same vector at t = 0…11
    scores = (q_all @ k_all.transpose(-1, -2))[0, 0]
    for offset in (-3, 0, 5):
        diagonal = torch.diagonal(scores, offset)
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal))
    assert not torch.allclose(torch.diagonal(scores, 0)[:1], torch.diagonal(scores, 5)[:1])
    torch.testing.assert_close(rotate(q), q)  # position 0: no rotation


def test_config_checks_and_gpt2_hashes_as_before():
    with pytest.raises(ConfigError, match="no biases"):
        ModelConfig(block="llama", bias=True)
    with pytest.raises(ConfigError, match="even head size"):
        ModelConfig(block="llama", width=36, heads=4)
    with pytest.raises(ConfigError, match=r"model\.block must be one of"):
        ModelConfig(block="mamba")
    run = tiny_gpt_run()
    assert "block" not in run.model.to_dict()
    assert config_hash(run) == config_hash(dataclasses.replace(run, model=run.model.replace()))
    assert config_hash(llama_run()) != config_hash(
        dataclasses.replace(llama_run(), model=llama_run().model.replace(block="gpt2"))
    )


WIDTHS, DENSITIES, DENSITY_WIDTH = [64, 128, 256], [1, 1 / 4, 1 / 16], 256


@pytest.fixture(scope="module")
def activations() -> pd.DataFrame:
    run = tiny_gpt_run(block="llama", width=64, depth=1, heads=4, context=32)
    run = dataclasses.replace(
        run,
        data=dataclasses.replace(run.data, seq_len=32),
        train=dataclasses.replace(run.train, steps=4),
        hps=dataclasses.replace(run.hps, lr=2**-9, weight_decay=0.0),
    )
    runs = coord_check_runs(run, ["sp", "supar"], WIDTHS, DENSITIES, [0], DENSITY_WIDTH)
    return activation_table(pd.DataFrame([row for r in runs for row in check_run(r)]))


def _worst(activations: pd.DataFrame, p: str, axis: str, groups: list[str]) -> float:
    fixed = {"density": 1.0} if axis == "width" else {"width": DENSITY_WIDTH}
    table = spread(activations, axis, fixed)
    return table[(table.parameterization == p) & table.group.isin(groups)]["spread"].max()


HIDDEN = ["attn.qkv", "attn.proj", "ffn.gate", "ffn.up", "ffn.down", "blocks"]


def test_coordinate_check_supar_flat_in_density_and_width_sp_not(activations):
    assert set(HIDDEN) <= set(activations.group)
    assert _worst(activations, "supar", "density", HIDDEN) <= 1.25
    assert _worst(activations, "supar", "width", HIDDEN) <= 1.25
    assert _worst(activations, "sp", "density", HIDDEN) > 2  # SP's activations fall


def test_plan_cli_block_flag(capsys):
    assert main(["plan", "--json", "--block", "llama", "--width", "64"]) == 0
    names = {row["name"] for row in json.loads(capsys.readouterr().out)}
    assert "blocks.0.ffn.gate.weight" in names and "pos_emb.weight" not in names
