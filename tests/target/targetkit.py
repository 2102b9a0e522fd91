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
from hptransfer.target import TargetConfig
from hptransfer.target.loop import train_target
from hptransfer.target.progress import PROGRESS_FILE, read_log
from hptransfer.target.run import TargetResult, run_target
from tests.conftest import tiny_gpt_run


def target_run(steps: int = 20) -> RunConfig:
    """The tiny GPT at density 1/2; batch 8, so each of 2 workers takes 4 rows."""
    run = tiny_gpt_run(density=0.5)
    return dataclasses.replace(
        run,
        data=DataConfig(corpus="synthetic", batch_size=8, seq_len=16, eval_batches=2),
        train=TrainConfig(steps=steps, warmup_steps=2, eval_every=10),
    )


def step_losses(folder: Path) -> list[float]:
    return [record["loss"] for record in read_log(folder / PROGRESS_FILE)]


@pytest.fixture(scope="session")
def short_root() -> Iterator[Path]:
    """A folder directly under /tmp: the embedded Ray's sockets need short paths."""
    root = Path(tempfile.mkdtemp(prefix="hpt-target-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def reference(short_root: Path) -> dict:
    """The run in this process, one worker, no Ray: the per-step losses to agree with."""
    folder = short_root / "one"
    metrics, _ = train_target(target_run(), TargetConfig(), folder, lambda state, m: None)
    return {"metrics": metrics, "losses": step_losses(folder)}


def _on_ray(short_root: Path, strategy: str, micro_batch: int | None = None) -> TargetResult:
    target = TargetConfig(workers=2, strategy=strategy, checkpoint_every=5, micro_batch=micro_batch)
    return run_target(target_run(), target, short_root / strategy)


@pytest.fixture(scope="session")
def ddp(short_root: Path) -> TargetResult:
    return _on_ray(short_root, "ddp")


@pytest.fixture(scope="session")
def fsdp(short_root: Path) -> TargetResult:
    """FSDP2 in micro-batches of 2 rows: gradients reduce-scattered once per step."""
    return _on_ray(short_root, "fsdp", micro_batch=2)
