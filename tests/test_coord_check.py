"""The coordinate check, run for real: SμPar keeps activations flat in width and density;
SP and μP let them fall with density (SPEC.md, the paper's Fig. 5)."""

import dataclasses

import pandas as pd
import pytest

from hptransfer.analysis.coord_plot import activation_table, spread
from hptransfer.cli.main import main
from hptransfer.coord_check import check_run, coord_check_runs, layer_group
from tests.conftest import tiny_gpt_run

HIDDEN = ["attn.qkv", "attn.proj", "ffn.up", "ffn.down", "blocks"]
WIDTHS, DENSITIES, DENSITY_WIDTH = [128, 256, 512], [1, 1 / 2, 1 / 4, 1 / 8, 1 / 16], 512


@pytest.fixture(scope="module")
def activations() -> pd.DataFrame:
    run = tiny_gpt_run(width=128, depth=1, heads=4, context=32)
    run = dataclasses.replace(
        run,
        data=dataclasses.replace(run.data, seq_len=32),
        train=dataclasses.replace(run.train, steps=4),
        hps=dataclasses.replace(run.hps, lr=2**-9, weight_decay=0.0),
    )
    runs = coord_check_runs(run, ["sp", "mup", "supar"], WIDTHS, DENSITIES, [0], DENSITY_WIDTH)
    return activation_table(pd.DataFrame([row for r in runs for row in check_run(r)]))


def worst(activations, p: str, axis: str, groups: list[str]) -> float:
    fixed = {"density": 1.0} if axis == "width" else {"width": DENSITY_WIDTH}
    table = spread(activations, axis, fixed)
    return table[(table.parameterization == p) & table.group.isin(groups)]["spread"].max()


def ratio_sparsest_to_dense(activations, p: str, group: str, step: int) -> float:
    t = activations[
        (activations.parameterization == p)
        & (activations.group == group)
        & (activations.width == DENSITY_WIDTH)
        & (activations.step == step)
    ]
    by_density = t.set_index("density")["value"]
    return by_density[1 / 16] / by_density[1.0]


def test_supar_flat_in_density(activations):
    assert worst(activations, "supar", "density", [*HIDDEN, "logits"]) <= 1.25


@pytest.fixture(scope="module")
def zero_readout_activations() -> pd.DataFrame:
    """μP and SμPar over widths at density 1 with a zero-initialised readout."""
    run = tiny_gpt_run(width=128, depth=1, heads=4, context=32, readout_zero_init=True)
    run = dataclasses.replace(
        run,
        data=dataclasses.replace(run.data, seq_len=32),
        train=dataclasses.replace(run.train, steps=4),
        hps=dataclasses.replace(run.hps, lr=2**-9, weight_decay=0.0),
    )
    runs = coord_check_runs(run, ["mup", "supar"], WIDTHS, [1.0], [0], DENSITY_WIDTH)
    return activation_table(pd.DataFrame([row for r in runs for row in check_run(r)]))


def test_supar_and_mup_flat_in_width(activations):
    for p in ("supar", "mup"):
        assert worst(activations, p, "width", HIDDEN) <= 1.25


def test_mup_initial_logits_shrink_as_one_over_sqrt_width(activations):
    """Why the logits are left out above: at init the readout's output multiplier 1/m_d
    outruns the √width growth of hW^T (init variance σ², constant), so μP's step-1 logits
    fall like 1/√width (the committed check: spread 2.05 over 256 → 1024); later steps are
    dominated by the update, which μP keeps flat."""
    for p in ("supar", "mup"):
        first = activations[
            (activations.parameterization == p)
            & (activations.group == "logits")
            & (activations.density == 1.0)
            & (activations.step == 1)
        ].set_index("width")["value"]
        assert first[WIDTHS[0]] / first[WIDTHS[-1]] == pytest.approx(2.0, rel=0.15)


def test_zero_initialised_readout_makes_the_logits_flat_in_width_too(zero_readout_activations):
    for p in ("supar", "mup"):
        assert worst(zero_readout_activations, p, "width", [*HIDDEN, "logits"]) <= 1.25


@pytest.mark.parametrize("p", ["sp", "mup"])
def test_sp_and_mup_activations_fall_with_density(activations, p):
    for group in ("attn.qkv", "ffn.up", "ffn.down"):
        assert ratio_sparsest_to_dense(activations, p, group, step=4) < 0.5


def test_sp_not_flat_in_width(activations):
    assert worst(activations, "sp", "width", HIDDEN) > 1.5


def test_layer_group():
    assert layer_group("blocks.3.attn.qkv") == "attn.qkv"
    assert layer_group("blocks.12") == "blocks"
    assert layer_group("hidden.2") == "hidden"
    assert layer_group("head") == "head"


def test_cli_writes_long_parquet_and_figures(tmp_path, capsys):
    code = main(
        [
            "coord-check",
            "--widths",
            "32,64",
            "--densities",
            "1,1/4",
            "--steps",
            "2",
            "--seeds",
            "0",
            "--corpus",
            "synthetic",
            "--seq-len",
            "16",
            "-p",
            "mup,supar",
            "--depth",
            "1",
            "--heads",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    records = pd.read_parquet(tmp_path / "coord_check.parquet")
    assert {
        "parameterization",
        "width",
        "density",
        "seed",
        "step",
        "layer",
        "metric",
        "value",
    } <= set(records.columns)
    assert set(records.metric) == {"activation", "gradient", "update"}
    assert (tmp_path / "coord_check_width.png").stat().st_size > 0
    assert (tmp_path / "coord_check_density.png").stat().st_size > 0
    assert "supar" in capsys.readouterr().out


def test_cli_rejects_unknown_parameterization(capsys):
    assert main(["coord-check", "-p", "sp,bogus"]) == 2
    assert "unknown parameterization 'bogus'" in capsys.readouterr().err
