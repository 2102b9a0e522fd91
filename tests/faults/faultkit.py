"""Helpers for the fault-injection tests: real ``hptransfer`` processes, their process trees,
and what those processes listen on.

Every process a test starts runs in a session of its own and is killed, with everything it
started, by :func:`kill_tree`; nothing here touches processes the test did not start.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
# Ray's sockets need short paths: results roots live directly under /tmp, so that the
# embedded Ray's temp dir stays inside the sweep folder (see cluster.ray_temp_dir).
SHORT_TMP = "/tmp"
# Columns that say when and how long, not what: they differ between identical runs.
# When a run finished, and the checkout's commit then (a commit made while a test runs moves it)
TIMING_COLUMNS = ["wall_s", "finished_at", "commit"]
QUIET_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
HOOKS = Path(__file__).resolve().parent / "hooks"


def load_module(name: str, path: Path) -> ModuleType:
    """Import a helper file of another test folder under its own module name."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# The sweep tests' tiny spec, and the transfer tests' fitted sweep, reused as they are.
tiny_spec = load_module("sweep_test_conftest", REPO / "tests" / "sweep" / "conftest.py").tiny_spec
_fitted = load_module("fitted_sweep", REPO / "tests" / "transfer" / "fitted_sweep.py")
write_fitted_sweep, FITTED_SPEC = _fitted.write_sweep, _fitted.TINY_SPEC

# 4 LRs × 2 seeds = 8 runs of about a second each (on a 2-core box), 2 at a time: long
# enough to kill the driver mid-way.
SPEC = tiny_spec(
    name="faults",
    train={"steps": 400, "eval_every": 200},
    search={"space": {"lr": {"log2_range": [-9, -6], "step": 1}}},
    resources={"max_concurrent": 2},
)
SWEEP_TIMEOUT_S = 600  # generous: a shared CI machine may be busy


def fault_env(root: Path, plan: dict[str, Any]) -> dict[str, str]:
    """Environment that makes a sweep's processes load hooks/sitecustomize.py with ``plan``
    (every training attempt is logged to ``root/attempts.log``)."""
    path = root / "plan.json"
    path.write_text(json.dumps({"log": str(root / "attempts.log"), **plan}))
    pythonpath = os.pathsep.join(p for p in (str(HOOKS), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": pythonpath, "HPT_FAULT_PLAN": str(path)}


def cli(*args: str) -> list[str]:
    command = shutil.which("hptransfer")
    prefix = [command] if command else [sys.executable, "-m", "hptransfer.cli.main"]
    return [*prefix, *args]


def write_yaml(path: Path, content: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(content))
    return path


@contextlib.contextmanager
def short_root(prefix: str = "hf") -> Iterator[Path]:
    """A fresh folder directly under /tmp (Ray's socket paths must stay short), removed
    afterwards."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix=prefix, dir=SHORT_TMP))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def start(command: list[str], env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen:
    """Start ``command`` in the repository, in a session of its own."""
    return subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        **kwargs,
    )


def descendants(root: int) -> set[int]:
    """``root`` and every process below it (from /proc: each process's parent)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


def cmdline(pid: int) -> list[str]:
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    return []


def environ(pid: int) -> dict[str, str]:
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{pid}/environ").read_bytes()
        pairs = (part.decode(errors="replace").partition("=") for part in raw.split(b"\0"))
        return {key: value for key, _, value in pairs if key}
    return {}


def kill_tree(proc: subprocess.Popen, pids: set[int] | None = None) -> None:
    """SIGKILL ``proc`` and every process it started (its session, plus ``pids`` seen below
    it earlier: Ray's processes may outlive the driver for a moment), then reap it."""
    victims = (pids or set()) | descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() and not _zombie(pid) for pid in victims):
        assert time.monotonic() < deadline, "processes of a killed sweep did not exit"
        time.sleep(0.1)


def _zombie(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return True


def stored_trials(path: Path) -> pd.DataFrame:
    """The trials a running (or killed) sweep stored in ``path``'s table and its part files
    (empty if none yet), read through the store as every reader does."""
    from hptransfer.store import ResultsStore

    return ResultsStore(path.parent, trials_file=path.name).read_trials()


def stored_rows(path: Path) -> int:
    return len(stored_trials(path))


def wait_until(condition, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the sweep exited (code {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def listening(pids: set[int]) -> set[str]:
    """``address:port`` of every TCP socket that ``pids`` listen on (``ss -ltnpH``)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        fields = line.split()
        if any(f"pid={pid}," in line for pid in pids):
            found.add(fields[3])
    return found


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
    return host.startswith("127.") or host == "::1"


def comparable(trials: pd.DataFrame) -> pd.DataFrame:
    """A trials table without timing columns (and commit), one row per trial in trial_id order."""
    return trials.drop(columns=TIMING_COLUMNS).sort_values("trial_id").reset_index(drop=True)


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` and a hash of its bytes (empty if ``root`` is missing).
    Not results, so left out: lock files (the holder's name while held) and Ray's working
    folders (``ray/``: logs and state of a running sweep)."""
    if not root.exists():
        return {}
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix != ".lock" and "ray" not in path.relative_to(root).parts
    }
