"""Kills during a target run on Ray Train (CPU, fp32, DDP, 2 workers; slow: ~5 fits).

The driver killed with SIGKILL, its target on a disk or in object storage (a moto S3 server
on 127.0.0.1): re-running resumes from the last checkpoint, and the final curve equals an
uninterrupted run's (on a disk) bit for bit. One worker killed: Ray Train's failure handling
restarts the worker group from the last checkpoint inside the same run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hptransfer.distributed.run import RESULT_FILE
from hptransfer.store import location
from tests.faults import faultkit
from tests.faults.s3kit import uri

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
STEPS, EVERY = 600, 100
KILL_AT = 150  # after the checkpoint at step 100
TIMEOUT_S = 600
# argv: the target's folder (a path or a URI), a local file the steps are written to as they
# are reported, the optimizer.
SCRIPT = f"""
import dataclasses, sys
from tests.distributed.targetkit import target_run
from hptransfer.config import TrainConfig
from hptransfer.runtime.resources import TargetConfig
from hptransfer.distributed import run_target
train = TrainConfig(steps={STEPS}, eval_every={EVERY}, optimizer=sys.argv[3])
run = dataclasses.replace(target_run(), train=train)
target = TargetConfig(workers=2, checkpoint_every={EVERY}, max_failures=1)
steps = open(sys.argv[2], "a", buffering=1)
run_target(run, target, sys.argv[1], on_progress=lambda r: print(r.get("step", 0), file=steps))
"""

pytest_plugins = ("tests.distributed.targetkit", "tests.faults.s3kit")  # their fixtures


def _start(folder: str, steps: Path, optimizer: str = "adamw") -> subprocess.Popen:
    env = {**os.environ, **faultkit.QUIET_ENV, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, folder, str(steps), optimizer],
        cwd=REPO,
        env=env,
        start_new_session=True,
    )


def _wait_for_step(proc: subprocess.Popen, steps: Path, step: int) -> set[int]:
    """Wait until the run reported ``step``; the processes below the driver by then."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        reported = steps.read_text().split() if steps.exists() else []
        if reported and int(reported[-1]) >= step:
            return faultkit.descendants(proc.pid)
        assert proc.poll() is None, "the run ended before the kill"
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _finish(proc: subprocess.Popen) -> None:
    assert proc.wait(TIMEOUT_S) == 0


def _result(folder: str) -> dict[str, Any]:
    return json.loads((location(folder) / RESULT_FILE).read_text())


def _resumed_once(result: dict[str, Any]) -> bool:
    """Whether the run had two attempts, the second from a checkpoint (not from step 0)."""
    starts = result["metrics"]["starts"]
    return starts[0] == 1 and len(starts) == 2 and starts[1] > 1 and (starts[1] - 1) % EVERY == 0


@pytest.fixture(scope="module")
def uninterrupted(short_root: Path) -> Callable[[str], list[dict]]:
    """The curve of an uninterrupted run with the given optimizer (trained once)."""
    curves: dict[str, list[dict]] = {}

    def curve(optimizer: str) -> list[dict]:
        if optimizer not in curves:
            folder = str(short_root / f"whole-{optimizer}")
            _finish(_start(folder, short_root / f"whole-{optimizer}.steps", optimizer))
            assert _result(folder)["metrics"]["starts"] == [1]
            curves[optimizer] = _result(folder)["curve"]
        return curves[optimizer]

    return curve


@pytest.mark.parametrize(
    ("storage", "optimizer"), [("disk", "adamw"), ("s3", "adamw"), ("disk", "muon")]
)
def test_driver_killed_mid_target_resumes_and_ends_bit_for_bit(
    storage, optimizer, short_root, uninterrupted, request
):
    name = f"driver-killed-{storage}-{optimizer}"
    s3 = request.getfixturevalue("s3") if storage == "s3" else None
    folder, steps = uri(s3, name) if s3 else str(short_root / name), short_root / f"{name}.steps"
    proc = _start(folder, steps, optimizer)
    seen = _wait_for_step(proc, steps, KILL_AT)
    os.kill(proc.pid, signal.SIGKILL)  # the driver only; its Ray goes down with it
    faultkit.kill_tree(proc, seen)
    assert not (location(folder) / RESULT_FILE).exists()
    _finish(_start(folder, steps, optimizer))
    assert _resumed_once(_result(folder))
    assert json.dumps(_result(folder)["curve"]) == json.dumps(uninterrupted(optimizer))


def test_a_killed_worker_is_retried_from_the_last_checkpoint(short_root, uninterrupted):
    folder = str(short_root / "worker-killed")
    proc = _start(folder, short_root / "worker-killed.steps")
    below = _wait_for_step(proc, short_root / "worker-killed.steps", KILL_AT)
    workers = [p for p in below if any("RayTrainWorker" in part for part in faultkit.cmdline(p))]
    assert workers, "no Ray Train worker found below the driver"
    os.kill(max(workers), signal.SIGKILL)
    _finish(proc)  # the same run finishes: Ray Train restarted its workers
    assert _resumed_once(_result(folder))
    assert json.dumps(_result(folder)["curve"]) == json.dumps(uninterrupted("adamw"))
