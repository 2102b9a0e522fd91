"""``hptransfer bench``: every benchmark takes an ``--out`` folder; bench train's table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hptransfer.bench import train
from hptransfer.cli.main import build_parser, main

BENCHMARKS = ["kernels", "many", "prepare", "sweep", "target", "train"]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_takes_an_out_folder(name):
    assert build_parser().parse_args(["bench", name]).out == Path("results/bench")
    args = build_parser().parse_args(["bench", name, "--out", "/tmp/figures"])
    assert args.out == Path("/tmp/figures")


def test_target_worker_counts_parse_and_bad_ones_exit_2(capsys):
    args = build_parser().parse_args(["bench", "target", "--workers", "1, 2,4"])
    assert args.workers == (1, 2, 4)
    assert main(["bench", "target", "--workers", "1,0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "positive integers" in err[0] and "'1,0'" in err[0]


def test_train_summary_takes_ratios_round_by_round():
    """Each round's ratio pairs a variant with nn.Linear timed in that same round."""
    baseline = [1.0, 2.0, 1.0, 2.0, 1.0]
    row = train._summary("ours", [2.0, 2.0, 1.25, 4.0, 1.0], baseline)
    assert row["ratio_vs_nn_linear"] == 0.8  # median of 0.5, 1, 0.8, 0.5, 1
    assert (row["ratio_min"], row["ratio_q1"], row["ratio_q3"], row["ratio_max"]) == (
        0.5,
        0.5,
        1.0,
        1.0,
    )
    assert row["steps_per_s"] == 0.5  # 1 / median seconds


def test_bench_train_writes_medians_and_spread_of_every_variant(tmp_path, capsys):
    argv = ["bench", "train", "--width", "16", "--depth", "1", "--batch-size", "2"]
    argv += ["--seq-len", "8", "--rounds", "5", "--steps", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    table = pd.read_parquet(tmp_path / "train.parquet")
    assert list(table["variant"]) == [
        "nn.Linear",
        "ours, density 1",
        "ours, density 0.125",
        "parametrize, density 0.125",
    ]
    assert (table["rounds"] == 5).all() and (table["clock"] == "cpu").all()
    base = table.iloc[0]
    assert base["ratio_vs_nn_linear"] == base["ratio_min"] == base["ratio_max"] == 1.0
    ordered = table[["ratio_min", "ratio_q1", "ratio_vs_nn_linear", "ratio_q3", "ratio_max"]]
    assert (ordered.diff(axis=1).iloc[:, 1:] >= 0).all().all()
    out = capsys.readouterr().out
    assert "median of 5 interleaved rounds" in out and "min–max" in out


def test_bench_train_refuses_zero_rounds(capsys):
    assert main(["bench", "train", "--rounds", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "positive integer" in err[0]
