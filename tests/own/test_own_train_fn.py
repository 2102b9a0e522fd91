"""A spec's ``train: {kind: python, fn: ...}``: the user's training function as the trainable
of one run, of a proxy sweep and its transfer, and of a Ray Train target (2 workers, FSDP2)
and a compiled one, with every parameter's LR unchanged."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hptransfer.adapt import describe
from hptransfer.cli.main import main
from hptransfer.config import TrainConfig
from hptransfer.coord_check import coord_check
from hptransfer.data import load_dataset
from hptransfer.distributed.loop import train_target
from hptransfer.distributed.run import run_target
from hptransfer.errors import ConfigError
from hptransfer.runtime.identity import run_key
from hptransfer.runtime.resources import TargetConfig
from hptransfer.store.folder import TRANSFER_FILE
from hptransfer.sweep import parse_spec
from hptransfer.sweep.trials import grid_runs
from hptransfer.train import complete_run, train
from tests.conftest import tiny_gpt_run
from tests.own.models import BUILD, python_run

FN = "tests.own.models:train_loop"
SMOOTHED = "tests.own.models:train_smoothed"
RECORDING = "tests.own.models:train_recording_lrs"


def with_fn(run, fn=FN):
    return dataclasses.replace(run, train=dataclasses.replace(run.train, kind="python", fn=fn))


def test_the_coordinate_check_refuses_a_train_fn_before_training(tmp_path):
    out = tmp_path / "cc"
    with pytest.raises(ConfigError, match=rf"coord-check takes its own steps.*train.fn '{FN}'"):
        coord_check(with_fn(python_run(width=32)), ["supar"], [32, 64], [1.0], [0], out)
    assert not out.exists()


@pytest.mark.parametrize(
    "run", [python_run(width=64, density=0.5), tiny_gpt_run(density=0.5)], ids=["own", "gpt"]
)
def test_a_function_taking_the_loops_steps_trains_bit_identically(run):
    ours, theirs = train(run), train(with_fn(run))
    assert theirs.curve == ours.curve and theirs.steps == ours.steps


def test_the_users_function_is_what_trains():
    assert train(python_run(fn=SMOOTHED)).curve != train(python_run(fn=FN)).curve


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        ("nowhere:train", "train.fn 'nowhere:train': module 'nowhere' does not import"),
        ("tests.own.models:nothing", "has no function 'nothing'"),
        ("tests.own.models:train_raising", "raised RuntimeError at step 1: out of memory"),
        ("tests.own.models:train_two_steps", "returned at step 2 of 3: call report"),
        ("tests.own.models:build", "raised TypeError at step 1"),
    ],
)
def test_bad_training_functions_are_one_line_errors(fn, message):
    with pytest.raises(ConfigError, match=message):
        train(python_run(fn=fn))


def test_train_fn_goes_with_kind_python_only():
    with pytest.raises(ConfigError, match=r"train\.fn .* goes with train\.kind: python"):
        TrainConfig(kind="python")
    with pytest.raises(ConfigError, match=r"train\.fn must be 'package\.module:function'"):
        TrainConfig(kind="python", fn="not a path")
    assert "kind" not in TrainConfig().to_dict()  # the built-in loop's hashes as before


def test_run_key_follows_the_functions_source(tmp_path, monkeypatch):
    module = tmp_path / "my_train.py"
    module.write_text("from tests.own.models import train_loop\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    run = python_run(fn="my_train:train_loop")
    before = run_key.__wrapped__(run)
    assert before != run_key.__wrapped__(python_run(fn=FN))
    module.write_text("from tests.own.models import train_loop  # edited\n")
    assert run_key.__wrapped__(run) != before
    sys.modules.pop("my_train", None)


@pytest.fixture(scope="module")
def short_root() -> Iterator[Path]:
    """A folder directly under /tmp: the embedded Ray's sockets need short paths."""
    root = Path(tempfile.mkdtemp(prefix="hpt-own-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


SPEC = {
    "name": "own",
    "model": {"kind": "python", "build": BUILD, "width": 32, "depth": 2, "heads": 2},
    "data": {"corpus": "synthetic", "batch_size": 4, "seq_len": 16, "eval_batches": 2},
    "train": {"steps": 3, "warmup_steps": 1, "kind": "python", "fn": SMOOTHED},
    "search": {"space": {"lr": {"log2_range": [-8, -4], "step": 2}}},
}


def test_a_sweep_fit_and_transfer_train_with_the_users_function(short_root, capsys):
    spec, results = short_root / "own.yaml", short_root / "results"
    spec.write_text(yaml.safe_dump({**SPEC, "model": {**SPEC["model"], "context": 16}}))
    assert main(["sweep", str(spec), "--results", str(results)]) == 0
    trials = pd.read_parquet(results / "own" / "trials.parquet")
    assert len(trials) == 3 and set(trials["status"]) == {"completed"}
    first = grid_runs(parse_spec(yaml.safe_load(spec.read_text())))[0]
    row = trials[trials["lr"] == first.hps.lr].iloc[0]
    assert row["val_loss"] == train(first).val_loss  # the trainable ran train_smoothed
    assert main(["fit", str(results / "own")]) == 0
    to = ["--to", "width=64,density=0.5", "--compare", "sp"]
    assert main(["transfer", "--from", str(results / "own"), *to]) == 0, capsys.readouterr().err
    runs = pd.read_parquet(results / "own" / TRANSFER_FILE)
    assert sorted(runs["parameterization"]) == ["sp", "supar"]
    assert set(runs["status"]) == {"completed"} and runs["val_loss"].notna().all()


def recorded_lrs(run, path: Path) -> tuple[dict[str, float], dict[str, float]]:
    """(the LR each parameter started at in the target, the LR its table row gives)."""
    table = describe(complete_run(run, load_dataset(run.data)))
    return json.loads(path.read_text()), {row.name: row.lr for row in table}


@pytest.fixture
def lrs_file(short_root, monkeypatch) -> Path:
    path = short_root / "lrs.json"
    path.unlink(missing_ok=True)
    monkeypatch.setenv("HPT_TEST_LRS", str(path))
    return path


def test_a_two_worker_fsdp_target_keeps_every_parameters_lr(short_root, lrs_file):
    run = python_run(width=64, density=0.25, fn=RECORDING)
    fsdp = TargetConfig(workers=2, strategy="fsdp")
    result = run_target(run, fsdp, short_root / "fsdp")
    got, want = recorded_lrs(run, lrs_file)
    assert got == want and len(set(want.values())) > 1  # roles of several LRs, each kept
    alone, _ = train_target(run, TargetConfig(), lambda state, metrics: None)
    assert math.isclose(result.metrics["val_loss"], alone["val_loss"], rel_tol=1e-5)


@pytest.mark.slow  # ~100 s on 2 CPU cores, most of it compiling
def test_a_compiled_target_keeps_every_parameters_lr(lrs_file):
    run = python_run(width=64, density=0.25, fn=RECORDING)
    compiled, _ = train_target(run, TargetConfig(compile=True), lambda state, metrics: None)
    got, want = recorded_lrs(run, lrs_file)
    assert got == want
    eager, _ = train_target(with_fn(run, FN), TargetConfig(), lambda state, metrics: None)
    assert math.isclose(compiled["val_loss"], eager["val_loss"], rel_tol=1e-4)
