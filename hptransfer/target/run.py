"""Train one target on Ray Train: checks, the trainer, resume, live progress.

The target's folder holds Ray Train's run (its ``checkpoint_*`` folders, the last
``keep_checkpoints`` kept), the live logs (:mod:`hptransfer.target.progress`), the final
``result.json`` and the artifact (:mod:`hptransfer.target.artifact`). Running the same
target again resumes from its last checkpoint; a finished one is not trained again.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hptransfer.config import RunConfig
from hptransfer.errors import ConfigError, HPTransferError, ResultsError
from hptransfer.store import write_text
from hptransfer.sweep.cluster import Execution, check_address, ray_session
from hptransfer.sweep.spec import Resources
from hptransfer.target.checkpoint import (
    TrainingState,
    latest_checkpoint,
    read_checkpoint,
    write_checkpoint,
)
from hptransfer.target.config import TargetConfig
from hptransfer.target.progress import CURVE_FILE, PROGRESS_FILE, read_log

RESULT_FILE = "result.json"
POLL_S = 1.0


class TargetFailedError(HPTransferError):
    """A target's training failed on every attempt Ray Train's failure handling allowed."""


@dataclass(frozen=True)
class TargetResult:
    folder: Path
    metrics: dict[str, Any]  # the last point, steps, diverged, wall_s, kernel, masks
    curve: list[dict[str, Any]]


def run_target(
    run: RunConfig,
    target: TargetConfig,
    folder: Path,
    *,
    execution: Execution | None = None,
    restart: bool = False,
    on_points: Callable[[list[dict[str, Any]]], None] | None = None,
) -> TargetResult:
    """Train ``run`` into ``folder`` (resuming from its last checkpoint unless ``restart``);
    ``on_points`` receives the curve so far whenever a point arrives."""
    execution = execution or Execution()
    folder = folder.resolve()
    check_resources(target, execution)
    if restart and folder.exists():
        _move_aside(folder, execution)
    check_writable(folder)
    if (folder / RESULT_FILE).is_file():
        return _result(folder)
    latest_checkpoint(folder, run)  # a damaged or foreign checkpoint fails before Ray starts
    resources = Resources(
        cpus_per_trial=target.cpus_per_worker, gpus_per_trial=target.gpus_per_worker
    )
    with ray_session(folder, dataclasses.replace(execution, resources=resources)):
        _check_cluster(target)
        trainer = _trainer(run, target, folder)
        _fit(trainer, folder, run.train.steps, execution, on_points)
    return _result(folder)


def check_resources(target: TargetConfig, execution: Execution) -> None:
    """Refuse, before anything starts, more workers than the embedded Ray can place."""
    if execution.address or os.environ.get("RAY_ADDRESS"):
        check_address(execution.address or os.environ["RAY_ADDRESS"])
        return
    cpus = len(os.sched_getaffinity(0))
    needed = target.workers * target.cpus_per_worker
    if needed > cpus:
        raise ConfigError(
            f"{target.workers} worker(s) × {target.cpus_per_worker} CPU(s) need {needed} CPUs "
            f"but the embedded Ray has {cpus}: use fewer workers, or a Ray cluster (--address)"
        )
    if target.gpus_per_worker > 0:
        import torch

        gpus = torch.cuda.device_count()
        if target.workers * target.gpus_per_worker > gpus:
            raise ConfigError(
                f"{target.workers} worker(s) × {target.gpus_per_worker:g} GPU(s) need "
                f"{target.workers * target.gpus_per_worker:g} GPUs but this machine has {gpus}"
            )


def check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot write the target's checkpoints to {folder}: {exc.strerror or exc}"
        ) from None


def _check_cluster(target: TargetConfig) -> None:
    import ray

    cpus = ray.cluster_resources().get("CPU", 0)
    if target.workers * target.cpus_per_worker > cpus:
        raise ConfigError(
            f"{target.workers} worker(s) × {target.cpus_per_worker} CPU(s) need more CPUs than "
            f"the Ray cluster has ({cpus:g})"
        )


def _move_aside(folder: Path, execution: Execution) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = folder.with_name(f"{folder.name}.replaced-{stamp}")
    folder.rename(aside)
    print(f"--restart: moved the previous target run to {aside}", file=execution.out)


def _trainer(run: RunConfig, target: TargetConfig, folder: Path) -> Any:
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    use_gpu = target.gpus_per_worker > 0
    resources = {
        "CPU": target.cpus_per_worker,
        **({"GPU": target.gpus_per_worker} if use_gpu else {}),
    }
    return TorchTrainer(
        train_loop_per_worker=worker_loop,
        train_loop_config={"run": run, "target": target, "folder": str(folder)},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=target.workers, use_gpu=use_gpu, resources_per_worker=resources
        ),
        run_config=ray.train.RunConfig(
            name=folder.name,
            storage_path=str(folder.parent),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=target.keep_checkpoints),
            failure_config=ray.train.FailureConfig(max_failures=target.max_failures),
        ),
    )


def _fit(
    trainer: Any,
    folder: Path,
    steps: int,
    execution: Execution,
    on_points: Callable[[list[dict[str, Any]]], None] | None,
) -> None:
    """``trainer.fit()`` in a thread; meanwhile the curve goes to ``on_points`` as it
    grows, and a progress line is printed every ``progress_every_s``."""
    outcome: dict[str, BaseException] = {}

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as exc:  # re-raised in the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
    thread.start()
    watcher = _Watcher(folder, steps, execution, on_points)
    while thread.is_alive():
        thread.join(POLL_S)
        watcher.poll()
    watcher.poll()
    if "error" in outcome:
        raise TargetFailedError(f"target {folder.name} failed: {_last_line(outcome['error'])}")


class _Watcher:
    """Follows a running target's logs: curve points to a callback, progress lines out."""

    def __init__(self, folder: Path, steps: int, execution: Execution, on_points: Any) -> None:
        self.folder, self.steps, self.execution, self.on_points = (
            folder,
            steps,
            execution,
            on_points,
        )
        self.points = 0
        self.printed = time.monotonic()
        self.every_s = 5.0 if execution.verbose else 30.0

    def poll(self) -> None:
        curve = read_log(self.folder / CURVE_FILE)
        if self.on_points is not None and len(curve) != self.points:
            self.on_points(curve)
        self.points = len(curve)
        if time.monotonic() - self.printed >= self.every_s:
            self.printed = time.monotonic()
            progress = read_log(self.folder / PROGRESS_FILE)
            if progress:
                print(
                    progress_line(self.folder.name, progress[-1], self.steps),
                    file=self.execution.out,
                )


def progress_line(name: str, record: dict[str, Any], steps: int) -> str:
    from hptransfer.sweep.report import format_duration

    return (
        f"{name}: step {record['step']}/{steps}, loss {record['loss']:.4f}, "
        f"{record['tokens_per_s']:,.0f} tokens/s, ETA {format_duration(record['eta_s'])}"
    )


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _result(folder: Path) -> TargetResult:
    try:
        metrics = json.loads((folder / RESULT_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{folder / RESULT_FILE} is unreadable ({exc})") from None
    return TargetResult(folder, metrics, read_log(folder / CURVE_FILE))


# ---------------------------------------------------------------------------- in the workers


def worker_loop(config: dict[str, Any]) -> None:
    """Ray Train's ``train_loop_per_worker``: resume from Ray's latest checkpoint, if any,
    train, and on rank 0 write the artifact and ``result.json``."""
    import ray.train
    import ray.train.torch
    import torch

    from hptransfer.data import load_dataset
    from hptransfer.target.artifact import write_artifact
    from hptransfer.target.loop import train_target
    from hptransfer.target.parallel import Worker
    from hptransfer.train import complete_run

    run: RunConfig = config["run"]
    target: TargetConfig = config["target"]
    folder = Path(config["folder"])
    torch.set_num_threads(target.cpus_per_worker)  # no oversubscription (ENVIRONMENT.md)
    context = ray.train.get_context()
    worker = Worker(
        context.get_world_rank(), context.get_world_size(), ray.train.torch.get_device()
    )
    state = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = read_checkpoint(Path(directory), run)
    metrics, final = train_target(
        run, target, folder, lambda s, m: _save(run, s, m), worker=worker, state=state
    )
    if worker.rank == 0 and final is not None:
        complete = complete_run(run, load_dataset(run.data))  # vocabulary size filled in
        write_artifact(folder, complete, final.model, metrics)
        write_text(folder / RESULT_FILE, json.dumps(metrics))


def _save(run: RunConfig, state: TrainingState | None, metrics: dict[str, Any]) -> None:
    """Every rank reports (a barrier); rank 0 with the checkpoint."""
    import ray.train

    if state is None:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory(prefix="hpt-checkpoint-") as directory:
        write_checkpoint(Path(directory), state, run)
        ray.train.report(
            metrics,
            checkpoint=ray.train.Checkpoint.from_directory(directory),
            checkpoint_dir_name=f"checkpoint_{state.step:09d}",
        )
