"""End to end on Ray: embedded, attached to a separate head, killed with SIGKILL and resumed."""

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

import pandas as pd
import pytest
import yaml
from conftest import tiny_spec

from hptransfer.cli.main import main
from hptransfer.store import CURVES, TRIALS
from hptransfer.sweep import load_spec, parse_spec
from hptransfer.sweep.trials import grid_runs, point_id, trial_id
from hptransfer.train import train

REPO = Path(__file__).resolve().parents[2]
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli_prefix() -> list[str]:
    command = shutil.which("hptransfer")
    return [command] if command else [sys.executable, "-m", "hptransfer.cli.main"]


def write(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


def expected_ids(spec: dict) -> set[str]:
    return {trial_id(point_id(run), run.seed) for run in grid_runs(parse_spec(spec))}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> dict:
    """The tiny grid sweep (2 LRs × 2 seeds) run once on an embedded Ray, output captured."""
    root = tmp_path_factory.mktemp("embedded")
    spec_path = write(root / "tiny.yaml", tiny_spec())
    out_path, err_path = root / "stdout", root / "stderr"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        # A subprocess: its stdout/stderr at the file-descriptor level show what Ray prints.
        proc = subprocess.run(
            [*cli_prefix(), "sweep", str(spec_path), "--results", str(root / "results")],
            cwd=REPO, stdout=out, stderr=err, timeout=300,
        )  # fmt: skip
    return {
        "code": proc.returncode,
        "stdout": out_path.read_text(),
        "stderr": err_path.read_text(),
        "dir": root / "results" / "tiny",
        "spec_path": spec_path,
    }


def test_embedded_sweep_stores_every_run_quietly(embedded):
    assert embedded["code"] == 0, embedded["stderr"]
    assert embedded["stderr"] == ""
    lines = embedded["stdout"].splitlines()
    progress = [line for line in lines if line.startswith("[")]
    assert len(progress) == 4 and progress[-1].startswith("[4/4]") and "ETA" in progress[-1]
    assert "best HPs per cell" in embedded["stdout"] and len(lines) <= 4 + 5
    trials = pd.read_parquet(embedded["dir"] / "trials.parquet")
    assert list(trials.columns) == TRIALS.names
    assert set(trials["trial_id"]) == expected_ids(tiny_spec()) and trials["trial_id"].is_unique
    assert (trials["status"] == "completed").all() and (trials["steps"] == 10).all()
    assert set(trials["lr"]) == {2.0**-7, 2.0**-6} and set(trials["seed"]) == {0, 1}
    curves = pd.read_parquet(embedded["dir"] / "curves.parquet")
    assert list(curves.columns) == CURVES.names
    assert all(steps == [5, 10] for steps in curves.groupby("trial_id")["step"].apply(list))
    spec = load_spec(embedded["dir"] / "spec.yaml")
    assert set(trials["spec_hash"]) == {spec.hash}
    assert not (embedded["dir"] / "ray" / "tmp").exists()  # short temp dir: elsewhere, removed


def test_losses_reproduce_in_process(embedded):
    trials = pd.read_parquet(embedded["dir"] / "trials.parquet").set_index("trial_id")
    run = grid_runs(parse_spec(tiny_spec()))[-1]
    assert train(run).val_loss == trials.loc[trial_id(point_id(run), run.seed), "val_loss"]


def test_rerun_of_finished_sweep_trains_nothing(embedded, capsys):
    before = pd.read_parquet(embedded["dir"] / "trials.parquet")
    results = str(embedded["dir"].parent)
    assert main(["sweep", str(embedded["spec_path"]), "--results", results]) == 0
    out = capsys.readouterr().out
    assert not [line for line in out.splitlines() if line.startswith("[")]
    pd.testing.assert_frame_equal(pd.read_parquet(embedded["dir"] / "trials.parquet"), before)


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
    """SIGTERM the process we started, then SIGKILL its process group (ours alone)."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_attached_cluster_gives_identical_results(embedded, ray_head, tmp_path, capsys):
    results = tmp_path / "results"
    code = main(["sweep", str(embedded["spec_path"]), "--results", str(results),
                 "--address", ray_head])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    attached = pd.read_parquet(results / "tiny" / "trials.parquet").set_index("trial_id")
    local = pd.read_parquet(embedded["dir"] / "trials.parquet").set_index("trial_id")
    assert list(attached.columns) == list(local.columns)
    assert (attached.dtypes == local.dtypes).all()
    assert sorted(attached.index) == sorted(local.index)
    # Grid sweeps with fixed seeds reproduce the same losses run to run.
    pd.testing.assert_series_equal(attached["val_loss"], local.loc[attached.index, "val_loss"])
    curves = pd.read_parquet(results / "tiny" / "curves.parquet")
    assert len(curves) == len(pd.read_parquet(embedded["dir"] / "curves.parquet"))


def test_sigkill_mid_sweep_then_resume(tmp_path, capsys):
    spec = tiny_spec(
        name="killed",
        train={"steps": 200, "eval_every": 100},
        search={"space": {"lr": {"log2_range": [-9, -6], "step": 1}}},
    )  # 4 LRs × 2 seeds = 8 runs of a second or two each
    spec_path = write(tmp_path / "killed.yaml", spec)
    results = tmp_path / "results"
    trials_path = results / "killed" / "trials.parquet"
    proc = subprocess.Popen(
        [*cli_prefix(), "sweep", str(spec_path), "--results", str(results)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        stored = wait_for_rows(trials_path, proc, at_least=2, timeout=240)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # Ray's children die with the driver anyway
    assert stored < 8, "the sweep finished before it could be killed: make the runs longer"
    before = pd.read_parquet(trials_path)  # a valid Parquet file after SIGKILL

    assert main(["sweep", str(spec_path), "--results", str(results)]) == 0
    out = capsys.readouterr().out
    after = pd.read_parquet(trials_path)
    assert after["trial_id"].is_unique and set(after["trial_id"]) == expected_ids(spec)
    assert len([line for line in out.splitlines() if line.startswith("[")]) == 8 - len(before)
    kept = after.set_index("trial_id").loc[before["trial_id"]]
    assert list(kept["finished_at"]) == list(before["finished_at"])  # not re-run
    curves = pd.read_parquet(results / "killed" / "curves.parquet")
    assert not curves.duplicated(["trial_id", "step"]).any()
    assert set(curves["trial_id"]) <= set(after["trial_id"])


def wait_for_rows(path: Path, proc: subprocess.Popen, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the sweep exited before it could be killed"
        if path.exists():
            rows = len(pd.read_parquet(path))
            if rows >= at_least:
                return rows
        time.sleep(0.1)
    raise TimeoutError("no trials stored in time")
