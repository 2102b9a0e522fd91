"""``hptransfer bench scale``: the GPU scale probe, run on CPU at a tiny size."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hptransfer.bench.scale import Probe, sized_steps
from hptransfer.cli.main import main

TINY = ["--densities", "1,0.5", "--octaves=-0.5,0", "--eval-batches", "2", "--batch-size", "8"]

# The probe must run where Ray and Optuna are missing: it never imports them.
NO_RAY = """
import sys
from hptransfer.cli.main import main
args = ["bench", "scale", "--width", "64", "--steps", "10", *sys.argv[2:]]
code = main([*args, "--out", sys.argv[1]])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("ray", "optuna"))
assert code == 0 and not loaded, (code, loaded)
"""


def test_tiny_probe_writes_runs_figure_and_summary(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", NO_RAY, str(tmp_path), *TINY], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    runs = pd.read_parquet(tmp_path / "scale.parquet")
    assert len(runs) == 2 * 2 * 2  # parameterizations × densities × η offsets
    assert set(runs["parameterization"]) == {"supar", "sp"}
    assert (runs["steps"] == 10).all() and (runs["precision"] == "fp32").all()
    assert runs["val_loss"].between(0, 10).all() and (runs["val_loss_se"] > 0).all()
    # η × 2^k around the transferred η, the same for both (SP takes SμPar's base HPs)
    for _, cell in runs.groupby(["parameterization", "density"]):
        ratio = cell.sort_values("octave")["lr"].to_numpy()
        assert ratio[1] / ratio[0] == pytest.approx(2**0.5)
    # at the base shape (width 64, dense) SP and SμPar are one model: identical losses
    dense = runs[runs["density"].eq(1)].pivot(index="octave", columns="parameterization")
    assert (dense["val_loss"]["sp"] == dense["val_loss"]["supar"]).all()
    sparse = runs[runs["density"].eq(0.5)]
    assert (sparse["per_row"] == 32).all()
    assert (sparse["tokens_per_nonzero_non_embedding"] > sparse["tokens_per_nonzero"]).all()
    assert (tmp_path / "scale.png").stat().st_size > 0
    summary = (tmp_path / "scale.md").read_text()
    assert "density 0.5 (d·ρ = 32): 10 steps, 5,120 tokens" in summary
    assert "epochs; SμPar − SP at the transferred η" in summary


def test_horizon_is_capped_at_two_epochs():
    probe = Probe(Path("results/default_flow"), 64, (1.0,), (0.0,), 8, 10**7, 1.0, 2, "cpu", "auto")
    steps = sized_steps(probe, runs=1, train_tokens=81_920, row_tokens=64)
    assert steps == 2 * 81_920 // (8 * 64)  # two epochs, not the 10^7 asked for


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (["--densities", "0"], "--densities must lie in (0, 1]"),
        (["--time-budget", "0"], "--time-budget must be > 0"),
        (["--device", "tpu"], "--device must be auto, cuda or cpu"),
    ],
)
def test_bad_flags_are_one_line_errors(tmp_path, capsys, flag, message):
    assert main(["bench", "scale", *flag, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
