"""Distributed, checkpointed target runs on Ray Train, and the trained model as an artifact.

``run_target`` trains one run with DDP or FSDP2 across Ray Train workers (resuming from its
last checkpoint); ``load_model`` rebuilds a trained target from its folder. Ray is imported
only when a target trains.
"""

from hptransfer.target.artifact import load_model, load_run
from hptransfer.target.config import TargetConfig

__all__ = ["TargetConfig", "load_model", "load_run", "run_target"]


def __getattr__(name: str):
    if name == "run_target":
        from hptransfer.target.run import run_target

        return run_target
    raise AttributeError(name)
