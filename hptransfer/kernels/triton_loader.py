"""The Triton kernel module, imported lazily: triton is an optional dependency."""

from __future__ import annotations

import importlib
from types import ModuleType

from hptransfer.errors import BackendUnavailableError


def triton_kernels() -> ModuleType:
    """The Triton kernel module, imported on first use (with an install hint if it cannot be)."""
    try:
        return importlib.import_module("hptransfer.kernels.triton_masked")
    except ImportError as exc:
        if exc.name is None or exc.name.split(".")[0] != "triton":
            raise
        raise BackendUnavailableError(
            "kernel 'triton' needs the triton package: pip install 'hptransfer[triton]' "
            "(or use kernel: torch)"
        ) from None
