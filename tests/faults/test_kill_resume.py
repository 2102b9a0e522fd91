"""The driver SIGKILLed at random moments, again and again, then resumed: every planned run
is stored exactly once and equals, run for run and bit for bit, the uninterrupted sweep.

Three kills at random moments (seeded; the seed is in every failure message, and
``HPT_FAULT_SEED`` replays one): the first anywhere in the 5 s after the sweep took its
folder (its checks, Ray's start, its first runs), the next two a random fraction of a run's
time after the sweep stored a random number of runs (at least 3 still to go), so they land
mid-run, between runs or mid-write, and before the sweep's last run is stored.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
from pathlib import Path
from typing import Any

import faultkit
import pandas as pd
import pytest

from hptransfer.runtime.identity import point_id, trial_id
from hptransfer.sweep import parse_spec
from hptransfer.sweep.trials import grid_runs

SEED = int(os.environ.get("HPT_FAULT_SEED", random.randrange(2**16)))
KILLS_MID_SWEEP = 2
RUNS = len(grid_runs(parse_spec(faultkit.SPEC)))
PLANNED = {trial_id(point_id(run), run.seed) for run in grid_runs(parse_spec(faultkit.SPEC))}


def kill_at_random(command: list[str], trials: Path, rng: random.Random) -> list[dict]:
    """Kill the sweep once early (after it took its folder: during its checks, Ray's start or
    its first runs), then KILLS_MID_SWEEP times after it stored a random number of runs."""
    spec_written = trials.with_name("spec.yaml")
    early = {"after_rows": 0, "delay": rng.uniform(0.0, 5.0)}
    later = [
        {"after_rows": rows, "run_fraction": rng.uniform(0.0, 0.6)}
        for rows in sorted(rng.sample(range(1, RUNS - 2), KILLS_MID_SWEEP))
    ]
    kills = []
    for plan in (early, *later):
        proc = faultkit.start(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            faultkit.wait_until(
                lambda plan=plan: (
                    spec_written.exists() and faultkit.stored_rows(trials) >= plan["after_rows"]
                ),
                proc,
                faultkit.SWEEP_TIMEOUT_S,
                f"{plan['after_rows']} stored runs (seed {SEED})",
            )
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=_delay(plan, trials))
            assert proc.poll() is None, f"the sweep ended before kill {len(kills) + 1} ({SEED=})"
        finally:
            faultkit.kill_tree(proc)
        stored = faultkit.stored_trials(trials)
        kills.append({**plan, "stored": stored})
    return kills


def _delay(plan: dict[str, Any], trials: Path) -> float:
    """The early kill's delay, or ``run_fraction`` of a stored run's training time: with 2
    runs at a time and 3 or more still to go, the last is stored at least one run's time
    after the latest stored one."""
    if "delay" in plan:
        return plan["delay"]
    return plan["run_fraction"] * float(faultkit.stored_trials(trials)["wall_s"].min())


@pytest.fixture(scope="module")
def resumed() -> dict[str, Any]:
    with faultkit.short_root("hk") as root:
        spec = faultkit.write_yaml(root / "spec.yaml", faultkit.SPEC)
        command = faultkit.cli("sweep", str(spec), "--results", str(root / "results"))
        directory = root / "results" / faultkit.SPEC["name"]
        kills = kill_at_random(command, directory / "trials.parquet", random.Random(SEED))
        done = subprocess.run(
            command,
            cwd=faultkit.REPO,
            capture_output=True,
            text=True,
            timeout=faultkit.SWEEP_TIMEOUT_S,
        )
        yield {
            "kills": kills,
            "code": done.returncode,
            "stdout": done.stdout,
            "stderr": done.stderr,
            "trials": pd.read_parquet(directory / "trials.parquet"),
            "curves": pd.read_parquet(directory / "curves.parquet"),
            "leftovers": sorted(p.name for p in directory.iterdir()),
            "ray_files": [p for p in (directory / "ray").rglob("*") if p.is_file()],
        }


def test_every_kill_left_a_valid_table_without_duplicates(resumed):
    assert len(resumed["kills"]) == 1 + KILLS_MID_SWEEP
    previous: set[str] = set()
    for kill in resumed["kills"]:
        ids = list(kill["stored"]["trial_id"])
        assert len(ids) == len(set(ids)) and set(ids) <= PLANNED, SEED
        assert previous <= set(ids), f"a kill lost stored runs ({SEED=})"
        previous = set(ids)
    assert len(previous) < RUNS, f"the last kill came after the sweep's end ({SEED=})"


def test_resumed_sweep_holds_each_planned_run_once(resumed):
    assert resumed["code"] == 0, (SEED, resumed["stderr"])
    trials = resumed["trials"]
    assert trials["trial_id"].is_unique and set(trials["trial_id"]) == PLANNED, SEED
    assert (trials["status"] == "completed").all()
    assert not resumed["curves"].duplicated(["trial_id", "step"]).any()
    # Runs stored before the last kill were not trained again.
    last = resumed["kills"][-1]["stored"].set_index("trial_id")["finished_at"]
    assert trials.set_index("trial_id").loc[last.index, "finished_at"].equals(last), SEED


def test_resumed_sweep_equals_the_uninterrupted_one_bit_for_bit(resumed, reference):
    """Determinism across runs and across resumes: same spec and seeds, same losses."""
    assert reference["code"] == 0, reference["stderr"]
    pd.testing.assert_frame_equal(
        faultkit.comparable(resumed["trials"]), faultkit.comparable(reference["trials"])
    )
    key = ["trial_id", "step"]
    curves = [
        c.sort_values(key).reset_index(drop=True) for c in (resumed["curves"], reference["curves"])
    ]
    pd.testing.assert_frame_equal(*curves)


def test_killed_runs_leave_no_ray_state_behind(resumed):
    """Ray's temp dir (in the sweep folder) and Tune's state go when the resumed sweep ends;
    a killed write may leave only a hidden temp file, never a partial table."""
    names = [name for name in resumed["leftovers"] if not name.startswith(".")]
    assert set(names) <= {"spec.yaml", "trials.parquet", "curves.parquet", "sweep.lock", "ray"}
    assert all(name.endswith(".tmp") for name in resumed["leftovers"] if name.startswith("."))
    assert resumed["ray_files"] == []


@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_an_interrupt_stops_at_once_with_exit_130_and_the_sweep_resumes(how: str):
    """Ctrl-C (SIGINT to the terminal's process group) or `kill PID` (SIGTERM to the driver)
    mid-sweep: exit 130 and one line that says how to resume; the runs stored so far stay,
    and re-running finishes the sweep."""
    with faultkit.short_root(f"hc-{how}") as root:
        spec = faultkit.write_yaml(root / "spec.yaml", faultkit.SPEC)
        command = faultkit.cli("sweep", str(spec), "--results", str(root / "results"))
        trials = root / "results" / faultkit.SPEC["name"] / "trials.parquet"
        proc = faultkit.start(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            faultkit.wait_until(
                lambda: faultkit.stored_rows(trials) >= 1, proc, faultkit.SWEEP_TIMEOUT_S, "a run"
            )
            if how == "ctrl-c":
                os.killpg(proc.pid, signal.SIGINT)
            else:
                os.kill(proc.pid, signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            faultkit.kill_tree(proc)
        assert proc.returncode == 130, err
        assert err.decode().strip().splitlines() == [
            f"hptransfer: interrupted; the finished runs are stored in {root / 'results'}/"
            f"{faultkit.SPEC['name']}: re-run the same command to resume"
        ]
        stored = set(faultkit.stored_trials(trials)["trial_id"])
        assert 1 <= len(stored) < RUNS
        done = subprocess.run(command, cwd=faultkit.REPO, capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert set(pd.read_parquet(trials)["trial_id"]) == PLANNED
