"""The examples in examples/ run, at tiny sizes: a plain PyTorch loop (with base HPs given,
and from a fitted sweep) and a transformers Trainer subclass."""

import math
import runpy
from pathlib import Path

import pytest

from tests.transfer.fitted_sweep import write_sweep

EXAMPLES = Path(__file__).parents[2] / "examples"
TINY = ["--width", "64", "--base-width", "32", "--steps", "4", "--batch-size", "2"]


def example(name: str):
    return runpy.run_path(str(EXAMPLES / name), run_name="example")["main"]


def test_plain_loop_trains_with_the_groups(capsys):
    losses = example("own_loop.py")([*TINY, "--seq-len", "16"])
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]
    assert "supar: Decoder width 64, density 0.25" in capsys.readouterr().out


def test_plain_loop_from_a_fitted_sweep(tmp_path, capsys):
    sweep = write_sweep(tmp_path / "results")  # fitted at width 16, 10 steps of batch 4
    args = ["--width", "32", "--base-width", "16", "--steps", "3", "--seq-len", "8"]
    losses = example("own_loop.py")([*args, "--fit", str(sweep)])
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert "supar: Decoder width 32" in capsys.readouterr().out


def test_transformers_trainer_with_the_groups():
    pytest.importorskip("transformers")
    loss = example("hf_trainer.py")([*TINY, "--seq-len", "16"])
    assert math.isfinite(loss)
