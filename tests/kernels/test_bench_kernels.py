"""``hptransfer bench kernels`` on tiny shapes: a tidy table, an atomic Parquet and a plot."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest

from hptransfer.bench import kernels


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    kernels.register(parser.add_subparsers(dest="benchmark", required=True))
    return parser.parse_args(["kernels", *argv])


def test_bench_writes_a_tidy_table_and_a_plot(tmp_path, capsys):
    args = _parse(
        [
            "--sizes",
            "64",
            "--tokens",
            "32",
            "--densities",
            "1,1/4",
            "--block",
            "16",
            "--min-run-time",
            "0.01",
            "--out",
            str(tmp_path),
        ]
    )
    assert args.func(args) == 0
    frame = pd.read_parquet(tmp_path / "kernels.parquet")
    assert set(frame["method"]) >= set(kernels.TORCH_METHODS)
    assert set(frame["pass"]) == set(kernels.PASSES)
    assert (frame["ms"] > 0).all() and frame["device"].nunique() == 1
    dense = frame[frame["method"] == "dense"]
    assert len(dense) == 2 and dense["speedup_vs_dense"].eq(1).all()
    assert (tmp_path / "kernels.png").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kernels.parquet", "kernels.png"]
    out = capsys.readouterr().out
    assert "device:" in out and "torch-masked" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["--densities", "0"],
        ["--densities", "1/0"],
        ["--sizes", "a"],
        ["--block", "48"],
        ["--rounds", "0"],
        ["--threads", "1,2"],
    ],
)
def test_bad_arguments_are_usage_errors(argv):
    with pytest.raises(SystemExit):
        _parse(argv)


def test_target_checks_report_the_issue_targets():
    rows = [
        ("dense", float("nan"), 10.0),
        ("unfused", 1 / 8, 12.0),
        ("triton-fused", 1 / 8, 10.5),
        ("triton-block", 1 / 8, 2.0),
    ]
    frame = pd.DataFrame(
        [
            {
                "d": 4096,
                "tokens": 16384,
                "pass": "fwd+bwd",
                "block": 64,
                "method": m,
                "density": r,
                "ms": ms,
            }
            for m, r, ms in rows
        ]
    )
    lines = kernels.target_checks(frame)
    assert lines == [
        "fused fwd+bwd throughput vs dense: 0.95x (target >= 0.9x)",
        "fused fwd+bwd speedup vs unfused: 1.14x (target >= 1.1x)",
        "block-sparse (density 1/8) speedup vs dense: 5.00x (target >= 4x)",
    ]
    assert kernels.target_checks(frame[frame["method"] == "dense"]) == []
