"""Target test helpers: one tiny sparse GPT trained for 20 steps in one process and on Ray
Train (2 workers, DDP and FSDP2), shared by every assertion (each fit costs ~20-50 s).

Not a conftest.py: the sweep and transfer tests import their own ``conftest`` by that bare
name, which another folder's conftest.py would shadow when both folders are collected."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hptransfer.config import DataConfig, RunConfig, TrainConfig
from hptransfer.distributed.loop import train_target
from hptransfer.distributed.progress import step_losses
from hptransfer.distributed.run import TargetResult, run_target
from hptransfer.runtime.resources import TargetConfig
from hptransfer.store import Location
from tests.conftest import tiny_gpt_run


def target_run(steps: int = 20, optimizer: str = "adamw") -> RunConfig:
    """The tiny GPT at density 1/2; batch 8, so each of 2 workers takes 4 rows."""
    run = tiny_gpt_run(density=0.5)
    return dataclasses.replace(
        run,
        data=DataConfig(corpus="synthetic", batch_size=8, seq_len=16, eval_batches=2),
        train=TrainConfig(steps=steps, warmup_steps=2, eval_every=10, optimizer=optimizer),
    )


@dataclasses.dataclass(frozen=True)
class Trained(TargetResult):
    """A target's result and the training loss of every step this call trained."""

    losses: list[float] = dataclasses.field(default_factory=list)


def train_on_ray(run: RunConfig, target: TargetConfig, folder: str | Location, **kwargs) -> Trained:
    """``run_target`` with the losses of its progress records."""
    records: list[dict] = []
    result = run_target(run, target, folder, on_progress=records.append, **kwargs)
    return Trained(result.folder, result.metrics, result.curve, step_losses(records))


@pytest.fixture(scope="session")
def short_root() -> Iterator[Path]:
    """A folder directly under /tmp: the embedded Ray's sockets need short paths."""
    root = Path(tempfile.mkdtemp(prefix="hpt-target-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def reference(short_root: Path) -> dict:
    """The run in this process, one worker, no Ray: the per-step losses to agree with."""
    records: list[dict] = []
    metrics, final = train_target(
        target_run(), TargetConfig(), lambda state, m: None, send=records.extend
    )
    return {"metrics": metrics, "losses": step_losses(records), "curve": final.curve}


def on_ray(
    folder: str | Location, strategy: str = "ddp", micro_batch: int | None = None
) -> Trained:
    """The target run on 2 workers, checkpointed every 5 steps."""
    target = TargetConfig(workers=2, strategy=strategy, checkpoint_every=5, micro_batch=micro_batch)
    return train_on_ray(target_run(), target, folder)


@pytest.fixture(scope="session")
def ddp(short_root: Path) -> Trained:
    return on_ray(short_root / "ddp")


@pytest.fixture(scope="session")
def fsdp(short_root: Path) -> Trained:
    """FSDP2 in micro-batches of 2 rows: gradients reduce-scattered once per step."""
    return on_ray(short_root / "fsdp", "fsdp", micro_batch=2)
