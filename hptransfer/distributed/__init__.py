"""Distributed, checkpointed target runs on Ray Train, and the trained model as an artifact.

``run_target`` trains one run with DDP or FSDP2 across Ray Train workers (resuming from its
last checkpoint); ``train_targets`` trains a transfer's runs into its results tables;
``load_model`` rebuilds a trained target from its folder. Torch and Ray are imported only
when these are used.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "load_model": "hptransfer.distributed.artifact",
    "load_run": "hptransfer.distributed.artifact",
    "run_target": "hptransfer.distributed.run",
    "train_targets": "hptransfer.distributed.runs",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
