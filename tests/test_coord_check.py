"""The coordinate check, run for real: SμPar keeps activations flat in width and density; SP and μP
let them fall with density (docs/parameterizations.md, the paper's Fig. 5); CompleteP keeps the
residual stream's activations and output updates flat in depth, μP lets them grow."""

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


@pytest.fixture(scope="module")
def depth_tables() -> dict[str, pd.DataFrame]:
    """μP and CompleteP over depths 2 → 16 at width 64: activation and output-update tables."""
    run = tiny_gpt_run(width=64, depth=2, heads=4, context=32)
    run = dataclasses.replace(
        run,
        data=dataclasses.replace(run.data, seq_len=32),
        train=dataclasses.replace(run.train, steps=4),
        hps=dataclasses.replace(run.hps, lr=2**-7, weight_decay=0.0),
    )
    runs = coord_check_runs(run, ["mup", "mup+completep"], [64], [1.0], [0], 64, depths=[2, 16])
    records = pd.DataFrame([row for r in runs for row in check_run(r)])
    return {m: activation_table(records, m) for m in ("activation", "output_update")}


def depth_spread(table: pd.DataFrame, p: str, step: int) -> float:
    """max/min over depths of the residual stream (each block's output), at ``step``."""
    rows = spread(table, "depth", {"width": 64, "density": 1.0})
    return rows[(rows.parameterization == p) & (rows.group == "blocks") & (rows.step == step)][
        "spread"
    ].item()


@pytest.mark.parametrize("metric", ["activation", "output_update"])
def test_completep_flat_in_depth_and_mup_not(depth_tables, metric):
    table = depth_tables[metric]
    assert depth_spread(table, "mup+completep", step=4) <= 1.3
    assert depth_spread(table, "mup", step=4) > 2.0


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
    assert set(records.metric) == {"activation", "gradient", "update", "output_update"}
    assert (tmp_path / "coord_check_width.png").stat().st_size > 0
    assert (tmp_path / "coord_check_density.png").stat().st_size > 0
    assert "supar" in capsys.readouterr().out


def test_cli_depth_sweep_writes_its_figures(tmp_path, capsys):
    args = ["--widths", "32", "--densities", "1", "--steps", "1", "--seeds", "0"]
    args += ["--corpus", "synthetic", "--seq-len", "16", "--heads", "2", "--depths", "1,2"]
    assert main(["coord-check", *args, "-p", "mup+completep", "--out", str(tmp_path)]) == 0
    records = pd.read_parquet(tmp_path / "coord_check.parquet")
    assert sorted(records.depth.unique()) == [1, 2]
    figures = sorted(path.name for path in tmp_path.glob("*.png"))
    assert figures == ["coord_check_depth.png", "coord_check_depth_output_update.png"]
    assert all((tmp_path / name).stat().st_size > 0 for name in figures)
    assert "depth_output_update" in capsys.readouterr().out  # one width, one density: no axes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--depths", "0,2"], "--depths must be a positive integer; got 0"),
        (["--depths", "2,x"], "--depths must be positive integers"),
        (["--kind", "mlp", "--depths", "2,4"], "an mlp has no residual blocks"),
    ],
)
def test_cli_rejects_bad_depths(capsys, args, message):
    assert main(["coord-check", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_rejects_unknown_parameterization(capsys):
    assert main(["coord-check", "-p", "sp,bogus"]) == 2
    assert "unknown parameterization 'bogus'" in capsys.readouterr().err
