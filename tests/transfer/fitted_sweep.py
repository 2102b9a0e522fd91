"""A tiny fitted sweep in seconds: the real spec, store rows and fit, with synthetic losses.

The losses are a parabola in log2(lr) with its minimum at 2^-6 (the SμPar paper's optimum),
so ``hptransfer fit`` locates it; no model is trained here.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hptransfer.analysis.fit import fit_sweep, write_fit
from hptransfer.cli.main import main
from hptransfer.config import RunConfig
from hptransfer.runtime.identity import point_id, trial_row
from hptransfer.store import ResultsStore
from hptransfer.sweep import parse_spec
from hptransfer.sweep.trials import grid_runs

TINY_SPEC = {
    "name": "tiny",
    "model": {"kind": "gpt", "width": 16, "depth": 1, "heads": 2, "context": 8},
    "data": {"corpus": "synthetic", "batch_size": 4, "seq_len": 8, "eval_batches": 1},
    "train": {"steps": 10, "warmup_steps": 2, "eval_every": 5},
    "parameterization": ["sp", "supar"],
    "search": {"space": {"lr": {"log2_range": [-9, -3], "step": 1}}},
    "seeds": [0, 1],
}
OPTIMUM_LOG2_LR = -6
# A joint search of lr and init_std; the basin is tilted (log2 lr and log2 σ trade off).
JOINT_SPEC = {
    **TINY_SPEC,
    "name": "joint",
    "parameterization": "supar",
    "search": {
        "space": {
            "lr": {"log2_range": [-9, -3], "step": 1},
            "init_std": {"values": [0.005, 0.01, 0.02, 0.04, 0.08]},
        }
    },
}
OPTIMUM_LOG2_INIT_STD = -5.3
# Sweeps over horizons and batch sizes: the optimum moves as η* ∝ D^-GAMMA·B^BETA, from 2^-6
# at TINY_SPEC's 10 steps of batch 4.
GAMMA = 0.25
BETA = 0.4
TOKENS_PER_STEP = 4 * 8  # batch_size × seq_len of TINY_SPEC
BATCH_STEPS = 16  # a sweep over batch sizes: 16 steps × 4 rows at every batch size


def transfer_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``hptransfer transfer ARGS``: the exit code, stdout and stderr."""
    code = main(["transfer", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def optimum_log2_lr(steps: int, batch: int = 4) -> float:
    tokens = steps * batch * 8
    return (
        OPTIMUM_LOG2_LR
        - GAMMA * math.log2(tokens / (TINY_SPEC["train"]["steps"] * TOKENS_PER_STEP))
        + BETA * math.log2(batch / 4)
    )


def tiny_loss(run: RunConfig, joint: bool) -> float:
    """A parabola in log2 lr (its minimum moving with the horizon, plus a little seed noise);
    ``joint``: a tilted basin in log2 lr and log2 init_std."""
    x = math.log2(run.hps.lr) - optimum_log2_lr(run.train.steps, run.data.batch_size)
    y = math.log2(run.hps.init_std) - OPTIMUM_LOG2_INIT_STD
    tilt = 0.04 * y * y + 0.03 * x * y if joint else 0.0
    noise = 0.002 * math.sin(7 * run.seed + 3 * x) if run.train.steps != 10 else 0.0
    return 3.0 + 0.05 * x * x + tilt + 0.01 * run.seed + noise


def write_sweep(
    root: Path,
    *,
    diverged: bool = False,
    fit: bool = True,
    joint: bool = False,
    horizons: tuple[int, ...] = (),
    batches: tuple[int, ...] = (),
    seeds: tuple[int, ...] = (0, 1),
    optimizer: str = "adamw",
) -> Path:
    """results/tiny/ (or results/joint/, with ``horizons`` results/horizons/, with
    ``batches`` results/batches/: :data:`BATCH_STEPS` steps of the first) under ``root``:
    spec.yaml, trials.parquet, curves.parquet, fit.json; tuned with ``optimizer``."""
    raw = JOINT_SPEC if joint else TINY_SPEC
    raw = {**raw, "train": {**raw["train"], "optimizer": optimizer}}
    if horizons:
        raw = {**raw, "name": "horizons", "train": {**raw["train"], "steps": list(horizons)}}
    if batches:
        raw = {
            **raw,
            "name": "batches",
            "data": {**raw["data"], "batch_size": list(batches)},
            "train": {**raw["train"], "steps": BATCH_STEPS * 4 // batches[0]},
        }
    spec = parse_spec({**raw, "seeds": list(seeds)})
    store = ResultsStore(root / spec.name)
    store.write_spec(spec.to_yaml())
    trials, curves = [], []
    for run in grid_runs(spec):
        loss, steps = tiny_loss(run, joint), run.train.steps
        tokens = steps * run.data.batch_size * run.data.seq_len
        point = {"step": steps, "tokens": tokens, "train_loss": loss}
        point["val_loss"] = math.nan if diverged else loss
        outcome = {**point, "status": "completed", "steps": steps, "diverged": diverged}
        trials.append(trial_row(point_id(run), run, spec.name, spec.hash, outcome))
        curves.append({"trial_id": trials[-1]["trial_id"], **point})
    with store.lock():
        store.append(trials, curves)
    if fit:
        write_fit(fit_sweep(store.directory), store.directory)
    return store.directory
