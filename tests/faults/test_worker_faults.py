"""Faults inside a sweep's workers: a worker process killed mid-run is retried and the run
stored once, as if nothing happened; a run that raises is retried a bounded number of times,
then stored with status error and its message while the sweep goes on.

Faults are injected by ``hooks/sitecustomize.py`` (on ``PYTHONPATH``, so Ray's workers load
it too): it logs every training attempt, pauses a run for the test to kill its process, or
makes a run raise.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import faultkit
import pandas as pd

from hptransfer.cli.main import main
from hptransfer.config import RunConfig
from hptransfer.runtime.identity import point_id, trial_id
from hptransfer.sweep import parse_spec
from hptransfer.sweep.trials import grid_runs, with_hps
from hptransfer.train import train

FAILING_LR = 2.0**-7
MESSAGE = "injected failure: a deliberately broken run"


def attempts(root: Path) -> Counter:
    """Training attempts per (lr, seed), from the hook's log."""
    lines = (root / "attempts.log").read_text().splitlines()
    return Counter((float(lr), int(seed)) for _, lr, seed in (line.split() for line in lines))


def retrained(trials: pd.DataFrame, template: RunConfig) -> list[float]:
    """Each stored run's val_loss, trained again here from its HPs and seed."""
    return [
        train(with_hps(template, {"lr": row.lr}, int(row.seed))).val_loss
        for row in trials.itertuples()
    ]


def test_worker_killed_mid_run_is_retried_and_stored_once(root):
    """Optuna, 2 points × 2 seeds per trial: the worker training a point's second seed is
    SIGKILLed after its first evaluation; the trial runs again from its first seed."""
    spec = faultkit.tiny_spec(
        name="killed",
        train={"steps": 100, "eval_every": 50},
        search={
            "algorithm": "optuna",
            "sampler": "random",
            "num_samples": 2,
            "space": {"lr": {"low": 2.0**-9, "high": 2.0**-6, "log": True}},
        },
        resources={"max_retries": 1},
    )
    path = faultkit.write_yaml(root / "killed.yaml", spec)
    marker = root / "paused.pid"
    proc = faultkit.start(
        faultkit.cli("sweep", str(path), "--results", str(root / "results")),
        env=faultkit.fault_env(root, {"pause": {"seed": 1, "marker": str(marker)}}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        faultkit.wait_until(
            lambda: marker.exists() and marker.read_text(),
            proc,
            faultkit.SWEEP_TIMEOUT_S,
            "a paused run",
        )
        victim = int(marker.read_text())
        assert victim in faultkit.descendants(proc.pid)  # a Ray worker of this sweep
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=faultkit.SWEEP_TIMEOUT_S)
    finally:
        faultkit.kill_tree(proc)
    assert proc.returncode == 0, err
    directory = root / "results" / "killed"
    trials = pd.read_parquet(directory / "trials.parquet")
    assert len(trials) == 4 and trials["trial_id"].is_unique
    assert (trials["status"] == "completed").all()
    curves = pd.read_parquet(directory / "curves.parquet")
    steps = curves.groupby("trial_id")["step"].apply(list)
    assert all(points == [50, 100] for points in steps), steps  # nothing left from the kill
    # The killed trial trained its point twice, every other run once.
    tries = attempts(root)
    point = trials.loc[trials["seed"] == 1, "lr"]
    killed_lr = next(lr for lr in point if tries[(lr, 1)] == 2)
    assert sorted(tries.values()) == [1, 1, 2, 2] and tries[(killed_lr, 0)] == 2
    template = parse_spec(spec).cells[0]
    assert list(trials["val_loss"]) == retrained(trials, template)  # bit for bit


def test_run_that_raises_is_stored_as_error_and_the_sweep_goes_on(root, capsys):
    """Grid, 2 LRs × 2 seeds; one run raises in its worker: tried 1 + max_retries times,
    stored with status error and its message; the three others complete. Re-running the
    same command trains that run alone."""
    spec = faultkit.tiny_spec(name="raising", train={"steps": 20}, resources={"max_retries": 1})
    path = faultkit.write_yaml(root / "raising.yaml", spec)
    args = ["sweep", str(path), "--results", str(root / "results")]
    plan = {"raise": {"lr": FAILING_LR, "seed": 1, "message": MESSAGE}}
    done = subprocess.run(
        faultkit.cli(*args),
        cwd=faultkit.REPO,
        env={**os.environ, **faultkit.fault_env(root, plan)},
        capture_output=True,
        text=True,
        timeout=faultkit.SWEEP_TIMEOUT_S,
    )
    assert done.returncode == 1, done.stderr
    assert "1 runs failed" in done.stderr and "re-run the same command" in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    failing = trial_id(point_id(with_hps(parse_spec(spec).cells[0], {"lr": FAILING_LR})), 1)
    trials = pd.read_parquet(root / "results" / "raising" / "trials.parquet").set_index("trial_id")
    assert len(trials) == len(grid_runs(parse_spec(spec)))
    assert trials.loc[failing, "status"] == "error" and MESSAGE in trials.loc[failing, "error"]
    others = trials.drop(index=failing)
    assert (others["status"] == "completed").all() and (others["error"] == "").all()
    tries = attempts(root)
    assert tries[(FAILING_LR, 1)] == 2 and set(tries.values()) == {1, 2}

    assert main(args) == 0  # the same command again (in this process: no fault injected)
    out = capsys.readouterr().out
    assert len([line for line in out.splitlines() if line.startswith("[")]) == 1
    after = pd.read_parquet(root / "results" / "raising" / "trials.parquet").set_index("trial_id")
    assert (after["status"] == "completed").all() and after.loc[failing, "error"] == ""
    assert after.loc[others.index, "finished_at"].equals(others["finished_at"])
