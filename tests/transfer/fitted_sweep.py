"""A tiny fitted sweep in seconds: the real spec, store rows and fit, with synthetic losses.

The losses are a parabola in log2(lr) with its minimum at 2^-6 (SPEC.md's SμPar optimum),
so ``hptransfer fit`` locates it; no model is trained here.
"""

from __future__ import annotations

import math
from pathlib import Path

from hptransfer.analysis.fit import fit_sweep, write_fit
from hptransfer.config import RunConfig
from hptransfer.store import ResultsStore
from hptransfer.sweep import parse_spec
from hptransfer.sweep.trials import grid_runs, point_id, trial_row

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


def tiny_loss(run: RunConfig, joint: bool) -> float:
    """A parabola in log2 lr; ``joint``: a tilted basin in log2 lr and log2 init_std."""
    x = math.log2(run.hps.lr) - OPTIMUM_LOG2_LR
    y = math.log2(run.hps.init_std) - OPTIMUM_LOG2_INIT_STD
    tilt = 0.04 * y * y + 0.03 * x * y if joint else 0.0
    return 3.0 + 0.05 * x * x + tilt + 0.01 * run.seed


def write_sweep(
    root: Path, *, diverged: bool = False, fit: bool = True, joint: bool = False
) -> Path:
    """results/tiny/ (or results/joint/) under ``root``: spec.yaml, trials.parquet,
    curves.parquet, fit.json."""
    spec = parse_spec(JOINT_SPEC if joint else TINY_SPEC)
    store = ResultsStore(root / spec.name)
    store.write_spec(spec.to_yaml())
    trials, curves = [], []
    for run in grid_runs(spec):
        loss = tiny_loss(run, joint)
        point = {"step": 10, "tokens": 320, "train_loss": loss, "val_loss": loss}
        if diverged:
            point["val_loss"] = math.nan
        outcome = {**point, "status": "completed", "steps": 10, "diverged": diverged}
        trials.append(trial_row(point_id(run), run, spec.name, spec.hash, outcome))
        curves.append({"trial_id": trials[-1]["trial_id"], **point})
    store.append(trials, curves)
    if fit:
        write_fit(fit_sweep(store.directory), store.directory)
    return store.directory
