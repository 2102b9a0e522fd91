"""Fixtures for the fault-injection tests: the reference sweep, run once, uninterrupted, as a
real ``hptransfer sweep`` process watched from outside (its processes, their sockets, their
command lines and environments)."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faultkit
import pandas as pd
import pytest
from faultkit import SPEC, SWEEP_TIMEOUT_S


def watch(proc: subprocess.Popen, seen: dict[str, Any], stop: threading.Event) -> None:
    """Until ``stop``: what every process below ``proc`` listens on, runs and inherits."""
    while not stop.is_set():
        pids = faultkit.descendants(proc.pid)
        seen["sockets"] |= faultkit.listening(pids)
        for pid in pids - seen["pids"]:
            seen["pids"].add(pid)
            seen["cmdlines"].append(faultkit.cmdline(pid))
            seen["environs"].append(faultkit.environ(pid))
        stop.wait(0.25)


@pytest.fixture(scope="session")
def reference() -> Iterator[dict[str, Any]]:
    """SPEC run once without interruption, watched while it runs; its folder stays until the
    end of the session."""
    with faultkit.short_root("hr") as root:
        spec_path = faultkit.write_yaml(root / "spec.yaml", SPEC)
        results = root / "results"
        proc = faultkit.start(
            faultkit.cli("sweep", str(spec_path), "--results", str(results)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen: dict[str, Any] = {"sockets": set(), "pids": set(), "cmdlines": [], "environs": []}
        stop = threading.Event()
        watcher = threading.Thread(target=watch, args=(proc, seen, stop), daemon=True)
        watcher.start()
        try:
            out, err = proc.communicate(timeout=SWEEP_TIMEOUT_S)
        finally:
            stop.set()
            watcher.join()
            faultkit.kill_tree(proc)
        directory = results / SPEC["name"]
        yield {
            **seen,
            "code": proc.returncode,
            "stdout": out,
            "stderr": err,
            "root": root,
            "results": results,
            "dir": directory,
            "trials": pd.read_parquet(directory / "trials.parquet"),
            "curves": pd.read_parquet(directory / "curves.parquet"),
        }


@pytest.fixture
def root() -> Iterator[Path]:
    """A short folder under /tmp for one test (Ray's socket paths), removed afterwards."""
    with faultkit.short_root() as path:
        yield path
