"""The package as a user gets it: a wheel installed in a fresh virtual environment, used
outside the checkout (slow: builds, installs, starts Ray)."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
TINY = """\
name: tiny
model: {kind: gpt, width: 16, depth: 1, heads: 2, context: 16, density: [1.0, 0.5]}
data: {corpus: shakespeare, batch_size: 4, seq_len: 16, eval_batches: 2}
train: {steps: 10, warmup_steps: 2}
parameterization: supar
search: {space: {lr: {values: [0.004, 0.016]}}}
"""


def _run(*argv: str | Path, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{argv}: {done.stderr[-2000:]}"
    return done.stdout


def _see_this_interpreters_packages(venv: Path) -> None:
    """The dependencies (torch, Ray, ...) from the interpreter running the tests, appended to the
    new venv's path. ``--system-site-packages`` would not do: run from inside a venv, it gives
    the base Python's packages, not this venv's. A path listed in a ``.pth`` file is not itself
    scanned for ``.pth`` files, so this interpreter's editable hptransfer stays out of sight."""
    (own,) = (venv / "lib").glob("python*/site-packages")
    (own / "test-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")


@pytest.mark.slow
def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation",
         "-w", wheels, cwd=tmp_path, env=env)  # fmt: skip
    (wheel,) = wheels.glob("hptransfer-*.whl")
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path, env=env)
    _see_this_interpreters_packages(venv)
    _run(venv / "bin" / "pip", "install", "--no-deps", "--force-reinstall", wheel,
         cwd=tmp_path, env=env)  # fmt: skip
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run(venv / "bin" / "python", "-c", "import hptransfer; print(hptransfer.__file__)",
                 cwd=work, env=env)  # fmt: skip
    assert where.startswith(str(venv))
    hptransfer = venv / "bin" / "hptransfer"
    assert "usage: hptransfer" in _run(hptransfer, "--help", cwd=work, env=env)
    assert "commit none (not a git checkout)" in _run(hptransfer, "--version", cwd=work, env=env)
    (work / "tiny.yaml").write_text(TINY)  # the shipped Shakespeare corpus
    out = _run(hptransfer, "sweep", "tiny.yaml", cwd=work, env=env)
    assert "(4 runs, 4 trained)" in out and (work / "results" / "tiny" / "trials.parquet").is_file()
