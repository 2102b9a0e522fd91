"""Kills during a target run on Ray Train (CPU, fp32, DDP, 2 workers; slow: ~4 fits).

The driver killed with SIGKILL: re-running resumes from the last checkpoint, and the final
curve equals an uninterrupted run's bit for bit. One worker killed: Ray Train's failure
handling restarts the worker group from the last checkpoint inside the same run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hptransfer.target.progress import CURVE_FILE, PROGRESS_FILE, STARTS_FILE, read_log
from tests.faults import faultkit

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
STEPS, EVERY = 600, 100
KILL_AT = 150  # after the checkpoint at step 100
TIMEOUT_S = 600
SCRIPT = f"""
import dataclasses, sys
from pathlib import Path
from tests.target.targetkit import target_run
from hptransfer.config import TrainConfig
from hptransfer.target import TargetConfig, run_target
run = dataclasses.replace(target_run(), train=TrainConfig(steps={STEPS}, eval_every={EVERY}))
target = TargetConfig(workers=2, checkpoint_every={EVERY}, max_failures=1)
run_target(run, target, Path(sys.argv[1]))
"""

pytest_plugins = ("tests.target.targetkit",)  # its fixtures


def _start(folder: Path) -> subprocess.Popen:
    env = {**os.environ, **faultkit.QUIET_ENV, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(folder)], cwd=REPO, env=env, start_new_session=True
    )


def _wait_for_step(proc: subprocess.Popen, folder: Path, step: int) -> set[int]:
    """Wait until the run logged ``step``; the processes below the driver by then."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        records = read_log(folder / PROGRESS_FILE)
        if records and records[-1]["step"] >= step:
            return faultkit.descendants(proc.pid)
        assert proc.poll() is None, "the run ended before the kill"
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _finish(proc: subprocess.Popen) -> None:
    assert proc.wait(TIMEOUT_S) == 0


@pytest.fixture(scope="module")
def uninterrupted(short_root: Path) -> list[dict]:
    folder = short_root / "whole"
    _finish(_start(folder))
    return read_log(folder / CURVE_FILE)


def test_driver_killed_mid_target_resumes_and_ends_bit_for_bit(short_root, uninterrupted):
    folder = short_root / "driver-killed"
    proc = _start(folder)
    seen = _wait_for_step(proc, folder, KILL_AT)
    os.kill(proc.pid, signal.SIGKILL)  # the driver only; its Ray goes down with it
    faultkit.kill_tree(proc, seen)
    assert not (folder / "result.json").exists()
    _finish(_start(folder))
    starts = [r["first_step"] for r in read_log(folder / STARTS_FILE)]
    assert starts[0] == 1 and len(starts) == 2 and starts[1] > 1  # resumed, not from 0
    assert (starts[1] - 1) % EVERY == 0
    assert json.dumps(read_log(folder / CURVE_FILE)) == json.dumps(uninterrupted)


def test_a_killed_worker_is_retried_from_the_last_checkpoint(short_root, uninterrupted):
    folder = short_root / "worker-killed"
    proc = _start(folder)
    below = _wait_for_step(proc, folder, KILL_AT)
    workers = [p for p in below if any("RayTrainWorker" in part for part in faultkit.cmdline(p))]
    assert workers, "no Ray Train worker found below the driver"
    os.kill(max(workers), signal.SIGKILL)
    _finish(proc)  # the same run finishes: Ray Train restarted its workers
    starts = [r["first_step"] for r in read_log(folder / STARTS_FILE)]
    assert starts[0] == 1 and len(starts) == 2 and starts[1] > 1 and (starts[1] - 1) % EVERY == 0
    assert json.dumps(read_log(folder / CURVE_FILE)) == json.dumps(uninterrupted)
