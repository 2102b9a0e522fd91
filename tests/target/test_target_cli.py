"""``hptransfer transfer --workers N``: targets on Ray Train into the transfer tables."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import hptransfer
from hptransfer.analysis.plots import TRANSFER_CURVES_FILE, TRANSFER_FILE
from hptransfer.cli.main import main
from hptransfer.store.folder import TARGETS_DIR
from hptransfer.target.artifact import CONFIG_FILE, WEIGHTS_FILE
from tests.transfer.fitted_sweep import write_sweep

TARGET = ["--to", "width=32,density=0.25", "--workers", "2"]

pytest_plugins = ("tests.target.targetkit",)  # its fixtures


def transfer(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["transfer", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def sweep(short_root: Path) -> Path:
    return write_sweep(short_root / "cli")


def test_dry_run_estimates_the_workers_together(sweep: Path, capsys) -> None:
    code, one, _ = transfer(capsys, "--from", str(sweep), "--to", "width=512", "--dry-run")
    assert code == 0
    code, out, err = transfer(
        capsys, "--from", str(sweep), "--to", "width=512", "--workers", "2", "--strategy",
        "fsdp", "--dry-run",
    )  # fmt: skip
    assert code == 0, err
    assert "on Ray Train, 2 worker(s), fsdp, fp32; memory of all workers together" in out
    assert re.search(r"memory +≈ [\d.]+ GiB \(weights [\d.]+, .*gathered", out)
    # half the FLOPs per worker (times vary with the load the GEMM rate is measured under)
    flops = re.findall(r"/step \(([\d.]+ \w?FLOP) at", one + out)
    assert len(flops) == 2
    (whole, whole_unit), (half, half_unit) = (f.split() for f in flops)
    assert half_unit == whole_unit and float(half) == pytest.approx(float(whole) / 2, rel=1e-3)


def test_a_target_trains_on_ray_train_into_the_transfer_tables(sweep: Path, capsys) -> None:
    code, out, err = transfer(capsys, "--from", str(sweep), *TARGET)
    assert code == 0, err
    runs = pd.read_parquet(sweep / TRANSFER_FILE)
    assert runs["status"].tolist() == ["completed"] and runs["val_loss"].notna().all()
    curves = pd.read_parquet(sweep / TRANSFER_CURVES_FILE)
    assert curves["step"].tolist() == [5, 10]
    folder = sweep / TARGETS_DIR / runs["trial_id"].iloc[0]
    assert (folder / WEIGHTS_FILE).is_file() and (folder / CONFIG_FILE).is_file()
    assert hptransfer.load_model(folder).cfg.width == 32
    code, again, _ = transfer(capsys, "--from", str(sweep), *TARGET)  # stored: not again
    assert code == 0 and again.splitlines()[-2:] == out.splitlines()[-2:]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "64"], r"need 64 CPUs but the embedded Ray has \d+"),
        (["--workers", "1", "--strategy", "fsdp"], "fsdp with 1 worker shards nothing"),
        (["--workers", "2", "--micro-batch", "3"], "--micro-batch 3 must divide"),
        (["--workers", "2", "--batch-size", "5"], r"batch size \(5\) must be divisible by the"),
        (["--restart"], "--restart applies to targets on Ray Train"),
        (["--workers", "0"], "target.workers must be a positive integer"),
        (["--workers", "2", "--gpus", "1"], "need 2 GPUs but this machine has 0"),
    ],
)
def test_bad_target_input_is_one_line_exit_2(sweep: Path, capsys, args, message) -> None:
    code, out, err = transfer(capsys, "--from", str(sweep), "--to", "width=32", *args)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and re.search(message, err), err
