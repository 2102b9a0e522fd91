"""``hptransfer bench``'s arguments: every benchmark writes into an ``--out`` folder."""

from __future__ import annotations

from pathlib import Path

import pytest

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
