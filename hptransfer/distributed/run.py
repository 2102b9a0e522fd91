"""Train one target on Ray Train: checks, the trainer, resume, live progress.

The target's folder, on a disk or in object storage (``s3://...``: any pyarrow filesystem,
:mod:`hptransfer.store.location`), holds Ray Train's run (its ``checkpoint_*`` folders, the
last ``keep_checkpoints`` kept, each with the curve so far), the final ``result.json``
(metrics and curve) and the artifact (:mod:`hptransfer.distributed.artifact`); the live progress
comes to the driver through a Ray queue (:mod:`hptransfer.distributed.progress`). Running the same
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
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hptransfer.config import RunConfig
from hptransfer.distributed.checkpoint import (
    TrainingState,
    checkpoint_name,
    latest_checkpoint,
    read_checkpoint,
    write_checkpoint,
)
from hptransfer.distributed.progress import Follower, Record, drain, ray_sender
from hptransfer.errors import ConfigError, HPTransferError, ResultsError
from hptransfer.runtime.cluster import Execution, check_address, ray_session
from hptransfer.runtime.resources import Resources, TargetConfig
from hptransfer.store import Location, ObjectPath, location, write_text
from hptransfer.store.location import move

RESULT_FILE = "result.json"
POLL_S = 1.0


class TargetFailedError(HPTransferError):
    """A target's training failed on every attempt Ray Train's failure handling allowed."""


@dataclass(frozen=True)
class TargetResult:
    folder: Location
    metrics: dict[str, Any]  # the last point, steps, diverged, wall_s, kernel, masks
    curve: list[dict[str, Any]]


def run_target(
    run: RunConfig,
    target: TargetConfig,
    folder: str | Location,
    *,
    execution: Execution | None = None,
    restart: bool = False,
    on_points: Callable[[list[Record]], None] | None = None,
    on_progress: Callable[[Record], None] | None = None,
) -> TargetResult:
    """Train ``run`` into ``folder`` (resuming from its last checkpoint unless ``restart``);
    ``on_points`` receives the curve so far whenever it changes, ``on_progress`` every
    progress record as it arrives."""
    execution = execution or Execution()
    if target.micro_batch and run.train.kind == "python":
        raise ConfigError("--micro-batch: a train.fn splits its batch itself (budget.batch_size)")
    folder = location(folder).resolve()
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
        from ray.util.queue import Queue

        queue = Queue(actor_options={"num_cpus": 0})
        watcher = _Watcher(folder.name, run.train.steps, execution, on_points, on_progress)
        _fit(_trainer(run, target, folder, queue), queue, watcher)
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


def check_writable(folder: Location) -> None:
    """Write and delete a probe file (object) in ``folder``, or fail in one line."""
    probe = folder / f".write-test-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except (OSError, ResultsError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(f"cannot write the target's checkpoints to {folder}: {why}") from None


def _check_cluster(target: TargetConfig) -> None:
    import ray

    cpus = ray.cluster_resources().get("CPU", 0)
    if target.workers * target.cpus_per_worker > cpus:
        raise ConfigError(
            f"{target.workers} worker(s) × {target.cpus_per_worker} CPU(s) need more CPUs than "
            f"the Ray cluster has ({cpus:g})"
        )


def _move_aside(folder: Location, execution: Execution) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = folder.with_name(f"{folder.name}.replaced-{stamp}")
    move(folder, aside)
    print(f"--restart: moved the previous target run to {aside}", file=execution.out)


def _trainer(run: RunConfig, target: TargetConfig, folder: Location, queue: Any) -> Any:
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    use_gpu = target.gpus_per_worker > 0
    resources = {
        "CPU": target.cpus_per_worker,
        **({"GPU": target.gpus_per_worker} if use_gpu else {}),
    }
    return TorchTrainer(
        train_loop_per_worker=worker_loop,
        train_loop_config={"run": run, "target": target, "folder": folder, "queue": queue},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=target.workers, use_gpu=use_gpu, resources_per_worker=resources
        ),
        run_config=ray.train.RunConfig(
            name=folder.name,
            **_storage(folder.parent),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=target.keep_checkpoints),
            failure_config=ray.train.FailureConfig(max_failures=target.max_failures),
        ),
    )


def _storage(where: Location) -> dict[str, Any]:
    """Ray Train's ``storage_path`` (and ``storage_filesystem``) for a folder."""
    if isinstance(where, ObjectPath):
        return {"storage_path": where.path, "storage_filesystem": where.fs}
    return {"storage_path": str(where)}


def _fit(trainer: Any, queue: Any, watcher: _Watcher) -> None:
    """``trainer.fit()`` in a thread; meanwhile the watcher takes the progress records in."""
    outcome: dict[str, BaseException] = {}

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as exc:  # re-raised in the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(POLL_S)
        watcher.take(drain(queue))
    watcher.take(drain(queue))
    if "error" in outcome:
        raise TargetFailedError(f"target {watcher.name} failed: {_last_line(outcome['error'])}")


class _Watcher:
    """Follows a running target: the curve to ``on_points`` whenever it changes, each record
    to ``on_progress``, a progress line every few seconds."""

    def __init__(
        self,
        name: str,
        steps: int,
        execution: Execution,
        on_points: Callable[[list[Record]], None] | None,
        on_progress: Callable[[Record], None] | None,
    ) -> None:
        self.name, self.steps, self.execution = name, steps, execution
        self.on_points, self.on_progress = on_points, on_progress
        self.follower = Follower()
        self.printed = time.monotonic()
        self.every_s = 5.0 if execution.verbose else 30.0

    def take(self, records: list[Record]) -> None:
        if self.follower.add(records) and self.on_points is not None:
            self.on_points(self.follower.curve)
        if self.on_progress is not None:
            for record in records:
                self.on_progress(record)
        last = self.follower.last
        if last is not None and time.monotonic() - self.printed >= self.every_s:
            self.printed = time.monotonic()
            print(progress_line(self.name, last, self.steps), file=self.execution.out)


def progress_line(name: str, record: dict[str, Any], steps: int) -> str:
    from hptransfer.display import format_duration

    return (
        f"{name}: step {record['step']}/{steps}, loss {record['loss']:.4f}, "
        f"{record['tokens_per_s']:,.0f} tokens/s, ETA {format_duration(record['eta_s'])}"
    )


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _result(folder: Location) -> TargetResult:
    try:
        result = json.loads((folder / RESULT_FILE).read_text())
        return TargetResult(folder, result["metrics"], result["curve"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ResultsError(f"{folder / RESULT_FILE} is unreadable ({exc})") from None


# ---------------------------------------------------------------------------- in the workers


def worker_loop(config: dict[str, Any]) -> None:
    """Ray Train's ``train_loop_per_worker``: resume from Ray's latest checkpoint, if any,
    train (rank 0 sending its progress to the driver's queue), and on rank 0 write the
    artifact and ``result.json`` into the target's folder (a disk's or object storage's)."""
    import ray.train
    import ray.train.torch
    import torch

    from hptransfer.data import load_dataset
    from hptransfer.distributed.artifact import write_artifact
    from hptransfer.distributed.loop import train_target
    from hptransfer.distributed.parallel import Worker
    from hptransfer.train import complete_run

    run: RunConfig = config["run"]
    target: TargetConfig = config["target"]
    folder: Location = config["folder"]
    torch.set_num_threads(target.cpus_per_worker)  # one thread per CPU: no oversubscription
    context = ray.train.get_context()
    worker = Worker(
        context.get_world_rank(), context.get_world_size(), ray.train.torch.get_device()
    )
    state = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            state = read_checkpoint(Path(directory), run)
    complete = complete_run(run, load_dataset(run.data))  # vocabulary size filled in
    metrics, final = train_target(
        run,
        target,
        lambda s, m: _save(run, complete, s, m),
        send=ray_sender(config["queue"]),
        worker=worker,
        state=state,
    )
    if worker.rank == 0 and final is not None:
        write_artifact(folder, complete, final.model, metrics)
        write_text(folder / RESULT_FILE, json.dumps({"metrics": metrics, "curve": final.curve}))


def _save(
    run: RunConfig, complete: RunConfig, state: TrainingState | None, metrics: dict[str, Any]
) -> None:
    """Every rank reports (a barrier); rank 0 with the checkpoint."""
    import ray.train

    if state is None:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory(prefix="hpt-checkpoint-") as directory:
        write_checkpoint(Path(directory), state, run, complete)
        ray.train.report(
            metrics,
            checkpoint=ray.train.Checkpoint.from_directory(directory),
            checkpoint_dir_name=checkpoint_name(state.step),
        )
