"""End to end on Ray: a sweep SIGKILLed mid-way and resumed, the same sweep on a separate
Ray head (identical results), a finished sweep re-run (nothing trained), Optuna with ASHA."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml
from conftest import tiny_spec

from hptransfer.cli.main import main
from hptransfer.runtime.cluster import TUNE_NAME, ray_temp_dir, ray_working_dir
from hptransfer.runtime.identity import point_id, trial_id
from hptransfer.store import CURVES, TRIALS, ResultsStore
from hptransfer.sweep import load_spec, parse_spec
from hptransfer.sweep.trials import grid_runs
from hptransfer.train import train

REPO = Path(__file__).resolve().parents[2]
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
# 4 LRs × 2 seeds = 8 runs of a second or so each: long enough to kill the sweep mid-way.
SPEC = tiny_spec(
    train={"steps": 100, "eval_every": 50},
    search={"space": {"lr": {"log2_range": [-9, -6], "step": 1}}},
)
RUNS = len(grid_runs(parse_spec(SPEC)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(*args: str) -> list[str]:
    command = shutil.which("hptransfer")
    prefix = [command] if command else [sys.executable, "-m", "hptransfer.cli.main"]
    return [*prefix, *args]


def progress_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("[")]


def wait_for_rows(path: Path, proc: subprocess.Popen, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the sweep exited before it could be killed"
        rows = len(ResultsStore(path.parent).read_trials())
        if rows >= at_least:
            return rows
        time.sleep(0.1)
    raise TimeoutError(f"fewer than {at_least} trials stored in {timeout} s")


@pytest.fixture(scope="module")
def resumed(tmp_path_factory) -> dict[str, Any]:
    """SPEC run as a subprocess, SIGKILLed after 2 stored runs, then resumed (subprocess,
    so its output is seen at the file-descriptor level, Ray's included)."""
    root = tmp_path_factory.mktemp("resumed")
    spec_path = root / "tiny.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    command = cli("sweep", str(spec_path), "--results", str(root / "results"))
    trials_path = root / "results" / "tiny" / "trials.parquet"
    proc = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        stored = wait_for_rows(trials_path, proc, at_least=2, timeout=240)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # Ray's processes die with the driver anyway
    before = ResultsStore(trials_path.parent).read_trials()  # valid tables right after SIGKILL
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    return {
        "stored_at_kill": stored,
        "before": before,
        "code": done.returncode,
        "stdout": done.stdout,
        "stderr": done.stderr,
        "dir": root / "results" / "tiny",
        "spec_path": spec_path,
    }


def test_sigkill_then_resume_loses_and_duplicates_nothing(resumed):
    assert resumed["stored_at_kill"] < RUNS, "finished before the kill: make the runs longer"
    assert resumed["code"] == 0, resumed["stderr"]
    after = pd.read_parquet(resumed["dir"] / "trials.parquet")
    expected = {trial_id(point_id(run), run.seed) for run in grid_runs(parse_spec(SPEC))}
    assert after["trial_id"].is_unique and set(after["trial_id"]) == expected
    before = resumed["before"]
    assert len(progress_lines(resumed["stdout"])) == RUNS - len(before)
    kept = after.set_index("trial_id").loc[before["trial_id"]]
    assert list(kept["finished_at"]) == list(before["finished_at"])  # not trained again
    curves = pd.read_parquet(resumed["dir"] / "curves.parquet")
    assert not curves.duplicated(["trial_id", "step"]).any()
    assert set(curves["trial_id"]) == expected


def test_output_is_quiet_and_tables_are_flat(resumed):
    assert resumed["stderr"] == ""  # nothing from Ray, Tune or Optuna
    lines = resumed["stdout"].splitlines()
    assert "ETA" in progress_lines(resumed["stdout"])[-1]
    assert "best HPs per cell" in resumed["stdout"] and lines[-1].startswith("results: ")
    assert len(lines) <= len(progress_lines(resumed["stdout"])) + 4
    trials = pd.read_parquet(resumed["dir"] / "trials.parquet")
    assert list(trials.columns) == TRIALS.names
    assert (trials["status"] == "completed").all() and (trials["steps"] == 100).all()
    assert set(trials["spec_hash"]) == {load_spec(resumed["dir"] / "spec.yaml").hash}
    curves = pd.read_parquet(resumed["dir"] / "curves.parquet")
    assert list(curves.columns) == CURVES.names
    assert all(steps == [50, 100] for steps in curves.groupby("trial_id")["step"].apply(list))


def test_losses_reproduce_in_process(resumed):
    trials = pd.read_parquet(resumed["dir"] / "trials.parquet").set_index("trial_id")
    run = grid_runs(parse_spec(SPEC))[-1]
    assert train(run).val_loss == trials.loc[trial_id(point_id(run), run.seed), "val_loss"]


def test_rerun_of_finished_sweep_trains_nothing(resumed, capsys):
    """... and clears what a sweep killed after its last run (while Ray stopped) left."""
    before = pd.read_parquet(resumed["dir"] / "trials.parquet")
    leftovers = [
        ray_temp_dir(resumed["dir"]) / "session_killed" / "logs" / "raylet.out",
        ray_working_dir(resumed["dir"]) / TUNE_NAME / "experiment_state.json",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("left by a killed sweep")
    results = str(resumed["dir"].parent)
    assert main(["sweep", str(resumed["spec_path"]), "--results", results]) == 0
    assert progress_lines(capsys.readouterr().out) == []
    pd.testing.assert_frame_equal(pd.read_parquet(resumed["dir"] / "trials.parquet"), before)
    assert not any(path.exists() for path in leftovers)
    assert not ray_temp_dir(resumed["dir"]).exists()


@pytest.fixture
def ray_head() -> Iterator[str]:
    """A separate Ray head on loopback (``ray start --head --block``), stopped afterwards."""
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="hpt-head-")  # short: Ray's socket paths
    proc = subprocess.Popen(
        ["ray", "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp_dir}", "--block"],
        env={**os.environ, **RAY_ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for_port(port, proc, timeout=120)
        yield f"127.0.0.1:{port}"
    finally:
        stop_group(proc)
        shutil.rmtree(temp_dir, ignore_errors=True)


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "ray start --head exited"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.5)
    raise TimeoutError(f"Ray head did not listen on {port}")


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the `ray start` we launched, then SIGKILL its process group (ours alone)."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_attached_cluster_gives_identical_results(resumed, ray_head, tmp_path, capsys):
    results = tmp_path / "results"
    args = ["sweep", str(resumed["spec_path"]), "--results", str(results), "--address", ray_head]
    assert main(args) == 0, capsys.readouterr().err
    attached = pd.read_parquet(results / "tiny" / "trials.parquet").set_index("trial_id")
    local = pd.read_parquet(resumed["dir"] / "trials.parquet").set_index("trial_id")
    assert list(attached.columns) == list(local.columns)
    assert (attached.dtypes == local.dtypes).all()
    assert sorted(attached.index) == sorted(local.index)
    # Grid sweeps with fixed seeds reproduce the same losses run to run (and across a kill).
    pd.testing.assert_series_equal(attached["val_loss"], local.loc[attached.index, "val_loss"])
    curves = pd.read_parquet(results / "tiny" / "curves.parquet")
    assert len(curves) == len(pd.read_parquet(resumed["dir"] / "curves.parquet"))


def test_optuna_with_asha(tmp_path, capsys):
    spec = tiny_spec(
        name="optuna",
        train={"steps": 40, "eval_every": 5},
        search={
            "algorithm": "optuna",
            "num_samples": 7,  # the fewest a joint fit of 2 HPs accepts
            "space": {
                "lr": {"low": 2**-10, "high": 2**-3, "log": True},
                "init_std": {"values": [0.01, 0.02]},
            },
        },
        seeds=[0],
        asha={"grace_period": 5, "reduction_factor": 2},
    )
    path = tmp_path / "optuna.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["sweep", str(path), "--results", str(tmp_path / "results")]) == 0
    assert len(progress_lines(capsys.readouterr().out)) == 7
    trials = pd.read_parquet(tmp_path / "results" / "optuna" / "trials.parquet")
    numbers = sorted(int(p.rsplit("-n", 1)[1]) for p in trials["point_id"])
    assert numbers == list(range(7))
    assert set(trials["status"]) <= {"completed", "early_stopped"}
    assert set(trials["init_std"]) <= {0.01, 0.02} and trials["lr"].between(2**-10, 2**-3).all()
    stopped = trials[trials["status"] == "early_stopped"]
    assert (stopped["steps"] < 40).all() and trials["wall_s"].notna().all()
    assert (trials.loc[trials["status"] == "completed", "steps"] == 40).all()
    curves = pd.read_parquet(tmp_path / "results" / "optuna" / "curves.parquet")
    last_step = curves.groupby("trial_id")["step"].max()
    assert (last_step[trials["trial_id"]].to_numpy() == trials["steps"].to_numpy()).all()


@pytest.mark.skipif(torch.cuda.is_available(), reason="kernel triton runs on a GPU")
def test_failing_trials_are_stored_as_errors(tmp_path, monkeypatch, capsys):
    """A run that raises in its worker is a row with status error (retried on resume)."""
    spec = tiny_spec(
        name="failing",
        model={"kernel": "triton", "density": 0.5},  # no GPU and no interpreter: raises
        search={"space": {"lr": {"values": [0.01]}}},
        seeds=[0],
    )
    path = tmp_path / "failing.yaml"
    path.write_text(yaml.safe_dump(spec))
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # Ray's workers inherit the env
    assert main(["sweep", str(path), "--results", str(tmp_path / "results")]) == 1
    out, err = capsys.readouterr()
    assert "1 runs failed" in err and "Traceback" not in err
    assert "ERROR" in progress_lines(out)[0] and "TRITON_INTERPRET" in out
    trials = pd.read_parquet(tmp_path / "results" / "failing" / "trials.parquet")
    assert list(trials["status"]) == ["error"] and "TRITON_INTERPRET" in trials.loc[0, "error"]


def extended_copy(resumed: dict[str, Any], tmp_path: Path, **changes: Any) -> tuple[Path, Path]:
    """The finished sweep's folder copied under tmp_path, and a spec changed by ``changes``."""
    results = tmp_path / "results"
    shutil.copytree(resumed["dir"], results / "tiny")
    spec_path = tmp_path / "tiny.yaml"
    spec_path.write_text(yaml.safe_dump({**SPEC, **changes}))
    return results, spec_path


def test_extend_keeps_stored_runs_and_trains_only_new_ones(resumed, tmp_path, capsys):
    results, spec_path = extended_copy(resumed, tmp_path, seeds=[0, 1, 2])
    before = pd.read_parquet(results / "tiny" / "trials.parquet").set_index("trial_id")
    args = ["sweep", str(spec_path), "--results", str(results)]
    assert main(args) == 2 and "--extend" in capsys.readouterr().err
    assert main([*args, "--extend"]) == 0, capsys.readouterr().err
    assert len(progress_lines(capsys.readouterr().out)) == RUNS // 2  # the seed-2 runs only
    after = pd.read_parquet(results / "tiny" / "trials.parquet").set_index("trial_id")
    planned = {trial_id(point_id(run), run.seed) for run in grid_runs(load_spec(spec_path))}
    assert set(after.index) == planned and len(after) == RUNS * 3 // 2
    pd.testing.assert_frame_equal(after.loc[before.index], before)
    assert main(args) == 0  # the extended spec is now the folder's spec: a plain resume


def test_extend_refuses_a_spec_that_drops_stored_runs(resumed, tmp_path, capsys):
    space = {"space": {"lr": {"log2_range": [-8, -6], "step": 1}}}  # drops 2^-9
    results, spec_path = extended_copy(resumed, tmp_path, search=space)
    table = results / "tiny" / "trials.parquet"
    before = table.read_bytes()
    code = main(["sweep", str(spec_path), "--results", str(results), "--extend"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not in the new spec" in err
    assert table.read_bytes() == before
