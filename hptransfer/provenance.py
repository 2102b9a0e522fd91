"""What produced a result: package versions, the device, the git commit.

Every stored run (``trials.parquet``, ``transfer.parquet``) and every ``fit.json`` records
these, and ``hptransfer --version`` prints them. Versions come from the installed
distributions' metadata (hptransfer's from the imported package), so nothing heavy is
imported to read them; a package that is not installed is recorded as ``""``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import subprocess
from pathlib import Path

import hptransfer

PACKAGES = ("hptransfer", "torch", "triton", "ray", "optuna")
VERSION_FIELDS = tuple(f"{name}_version" for name in PACKAGES)
# The columns of a stored run; ``kernel`` (the masked-matmul path a run used) sits beside them.
FIELDS = (*VERSION_FIELDS, "device", "commit")


@functools.cache
def versions() -> dict[str, str]:
    """``{"hptransfer_version": "0.1.0", "torch_version": "2.13.0", ...}``."""
    found = {"hptransfer_version": hptransfer.__version__}
    for name in PACKAGES[1:]:
        try:
            found[f"{name}_version"] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[f"{name}_version"] = ""
    return found


@functools.cache
def commit() -> str:
    """The git commit of the checkout hptransfer is imported from (``+dirty`` with uncommitted
    changes to tracked files), or ``""`` when it is not in a checkout (e.g. a wheel)."""
    root = Path(hptransfer.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return ""
    try:
        head = _git(root, "rev-parse", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no", "--", "hptransfer")
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{head}+dirty" if dirty else head


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()


def device_name(device: str = "cpu") -> str:
    """``cuda:0 NVIDIA H200`` or ``cpu <model name>`` (the device a run trained on)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{index} {torch.cuda.get_device_name(index)}"
    return f"{dev.type} {_cpu_model()}".strip()


@functools.cache
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def process_fields() -> dict[str, str]:
    """Versions and commit of this process (what a fit or a driver records)."""
    return {**versions(), "commit": commit()}


def run_fields(device: str = "cpu") -> dict[str, str]:
    """Everything a stored run records, for a run trained on ``device`` in this process."""
    return {**process_fields(), "device": device_name(device)}


def describe(device: str) -> str:
    """The ``hptransfer --version`` text: one ``name value`` line per field."""
    fields = run_fields(device)
    lines = [f"{name} {fields[f'{name}_version'] or 'not installed'}" for name in PACKAGES]
    lines.append(f"device {fields['device']}")
    lines.append(f"commit {fields['commit'] or 'none (not a git checkout)'}")
    return "\n".join(lines)
