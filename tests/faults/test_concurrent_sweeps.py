"""Two ``hptransfer sweep`` processes on one sweep folder: the second is refused, naming the
first (pid, host), and ``--new`` cannot move the folder from under it. Two different sweeps
run side by side, each with its own embedded Ray, and both complete."""

from __future__ import annotations

import socket
import subprocess

import faultkit
import pandas as pd
import pytest


@pytest.mark.slow  # two sweeps (the lock itself: test_corrupt_store.py, every run)
def test_second_sweep_on_a_folder_is_refused_while_another_sweep_runs_beside(root):
    results = root / "results"
    # One run at a time: while its run is paused, alpha writes nothing either.
    alpha_spec = faultkit.tiny_spec(name="alpha", resources={"max_concurrent": 1})
    alpha = faultkit.write_yaml(root / "alpha.yaml", alpha_spec)
    beta = faultkit.write_yaml(root / "beta.yaml", faultkit.tiny_spec(name="beta", seeds=[3]))
    marker, release = root / "paused.pid", root / "release"
    # alpha pauses inside a run (it holds its folder's lock) until the test releases it.
    holder = faultkit.start(
        faultkit.cli("sweep", str(alpha), "--results", str(results)),
        env=faultkit.fault_env(
            root, {"pause": {"seed": 0, "marker": str(marker), "until": str(release)}}
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    beside = faultkit.start(
        faultkit.cli("sweep", str(beta), "--results", str(results)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        faultkit.wait_until(marker.exists, holder, faultkit.SWEEP_TIMEOUT_S, "a paused run")
        before = faultkit.tree_digest(results / "alpha")
        for extra in ([], ["--new"]):
            second = subprocess.run(
                faultkit.cli("sweep", str(alpha), "--results", str(results), *extra),
                cwd=faultkit.REPO,
                capture_output=True,
                text=True,
                timeout=faultkit.SWEEP_TIMEOUT_S,
            )
            assert second.returncode == 2, second.stderr
            assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
            named = f"{results / 'alpha'} is in use by pid {holder.pid} on {socket.gethostname()}"
            assert named in second.stderr, second.stderr
        assert faultkit.tree_digest(results / "alpha") == before
        assert [p.name for p in results.iterdir() if "replaced" in p.name] == []
        release.touch()
        for proc in (holder, beside):
            _, err = proc.communicate(timeout=faultkit.SWEEP_TIMEOUT_S)
            assert proc.returncode == 0, err
    finally:
        faultkit.kill_tree(holder)
        faultkit.kill_tree(beside)
    for name, runs in (("alpha", 4), ("beta", 2)):
        trials = pd.read_parquet(results / name / "trials.parquet")
        assert len(trials) == runs and (trials["status"] == "completed").all()
        assert (results / name / "sweep.lock").read_text() == ""  # released
