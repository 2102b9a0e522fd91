"""One worker's share of a target run: the loop every Ray Train worker runs.

Every rank draws the same global batch from the run's seeded generator (so the data do not
depend on the number of workers) and trains on its rows with the step of
:mod:`hptransfer.train`; the reported loss is the mean over ranks. Rank 0 sends the live
progress (:mod:`hptransfer.distributed.progress`) and captures the checkpoints, which carry the
curve so far; with one worker and no process group the same function runs in the calling
process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from hptransfer import provenance
from hptransfer.adapt import build_model, plan_parameters
from hptransfer.config import RunConfig
from hptransfer.data import load_dataset
from hptransfer.distributed.checkpoint import TrainingState
from hptransfer.distributed.parallel import Worker, parallelize, without_gradient_sync
from hptransfer.distributed.progress import ProgressLog, Send
from hptransfer.models import sparse_layers
from hptransfer.models.sparse import local_shard, local_tensor
from hptransfer.optim import build_optimizer, build_schedule
from hptransfer.runtime.resources import TargetConfig
from hptransfer.train import (
    Context,
    LossTracker,
    complete_run,
    evaluate,
    is_eval_step,
    kernel_path,
    train_step,
    train_with_function,
    val_batches,
)

# Called at each checkpoint step with the state (full tensors on rank 0, None elsewhere)
# and the metrics so far; every rank calls it (it may be a barrier).
Save = Callable[[TrainingState | None, dict[str, Any]], None]


def train_target(
    run: RunConfig,
    target: TargetConfig,
    save: Save,
    *,
    send: Send | None = None,
    worker: Worker | None = None,
    state: TrainingState | None = None,
) -> tuple[dict[str, Any], TrainingState | None]:
    """Train ``run`` (from ``state`` if given) on this worker: the final metrics and, on
    rank 0, the final training state; rank 0 sends its progress records to ``send``."""
    worker = worker or Worker()
    start = time.perf_counter()
    dataset = load_dataset(run.data)
    run = complete_run(run, dataset)
    autocast = _autocast(target.resolved_precision(worker.device.type), worker.device)
    model = build_model(run, device=worker.device)  # same weights and masks on every rank
    if state is not None:
        model.load_state_dict(state.model)
    wrapped = parallelize(model, target.strategy, worker)
    accumulating = without_gradient_sync(wrapped)
    optimizer = build_optimizer(model, plan_parameters(model, run), run.train)
    schedule = build_schedule(optimizer, run.train)
    generator = torch.Generator().manual_seed(run.seed)
    tracker = LossTracker(run.train.divergence_factor)
    first_step, curve, starts = 1, [], []
    if state is not None:
        _restore(state, model, optimizer, schedule, generator)
        tracker, first_step = LossTracker(**state.tracker), state.step + 1
        curve, starts = state.curve, state.starts
    starts = [*starts, first_step]
    forward = torch.compile(wrapped) if target.compile else wrapped
    val = val_batches(run, dataset, worker.device)
    micro, _ = target.micro_batches(run.data.batch_size)
    tokens_per_step = run.data.batch_size * (run.data.seq_len if dataset.kind == "text" else 1)
    sender = send if worker.rank == 0 else None
    log = ProgressLog(sender, run.train.steps, tokens_per_step, first_step, curve)

    def validation_loss() -> float:
        with autocast():
            return evaluate(forward, val).loss

    metrics: dict[str, Any] = {} if state is None else state.metrics
    final = state
    checkpoint_s = []

    def draw() -> tuple[torch.Tensor, torch.Tensor]:
        return dataset.train_batch(run.data.batch_size, run.data.seq_len, generator)

    def record(step: int, local_loss: float) -> bool:
        nonlocal metrics, final
        loss = worker.mean(local_loss)
        diverged = tracker.add(loss)
        point = None
        if diverged or is_eval_step(step, run.train):
            point = tracker.point(step, step * tokens_per_step, validation_loss)
            metrics = {**point, "diverged": diverged, "steps": step}
        log.step(step, loss, point)
        if diverged or step == run.train.steps or step % target.checkpoint_every == 0:
            began = time.perf_counter()
            final = _capture(step, model, optimizer, schedule, tracker, generator, worker)
            if final is not None:
                history = {"curve": list(log.curve), "starts": starts}
                final = dataclasses.replace(final, metrics=metrics, **history)
            save(final, {**metrics, "step": step})
            checkpoint_s.append(time.perf_counter() - began)
        return diverged

    if run.train.kind == "python":
        rows = run.data.batch_size // worker.world
        context = Context(lambda: worker.share(*draw(), rows)[0], rows, first_step, autocast)
        train_with_function(run, forward, optimizer, schedule, context, record)
    else:
        for step in range(first_step, run.train.steps + 1):
            batches = worker.share(*draw(), micro)
            loss = train_step(
                forward, optimizer, batches, run.train.grad_clip, autocast, accumulating
            )
            schedule.step()
            if record(step, loss):
                break
    log.flush()
    summary = {
        **metrics,
        "starts": starts,
        "wall_s": time.perf_counter() - start,
        "kernel": kernel_path(model),
        **provenance.run_fields(str(worker.device)),
        "masks": mask_report(model, worker),
        "checkpoint_s": checkpoint_s,
        "peak_memory": worker.gather(_peak_memory(worker.device)),
    }
    return summary, final


def _peak_memory(device: torch.device) -> int:
    """This process's peak resident memory (CPU), or peak allocated GPU memory, in bytes."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _autocast(precision: str, device: torch.device) -> Callable[[], Any]:
    if precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def _state_options() -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def _capture(
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    tracker: LossTracker,
    generator: torch.Generator,
    worker: Worker,
) -> TrainingState | None:
    """The full (unsharded) training state on rank 0; None on the others. Every rank must
    call it: gathering sharded tensors is collective."""
    if worker.world == 1:
        model_state, optim_state = model.state_dict(), _named_optimizer_state(model, optimizer)
    else:
        from torch.distributed.checkpoint.state_dict import (
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        model_state = get_model_state_dict(model, options=_state_options())
        optim_state = get_optimizer_state_dict(model, optimizer, options=_state_options())
    if worker.rank != 0:
        return None
    return TrainingState(
        step=step,
        model={k: v.detach().cpu().clone() for k, v in model_state.items()},
        optimizer=optim_state,
        schedule=schedule.state_dict(),
        tracker=dataclasses.asdict(tracker),
        rng={"data": generator.get_state(), "torch": torch.get_rng_state()},
        metrics={},
        curve=[],
        starts=[],
    )


def _named_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``optimizer.state_dict()`` keyed by parameter name, the form
    ``torch.distributed.checkpoint.state_dict`` uses (one worker needs no process group)."""
    state, order = optimizer.state_dict(), _parameter_order(model, optimizer)
    return {
        "state": {
            order[i]: {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
            for i, s in state["state"].items()
        },
        "param_groups": [
            {**group, "params": [order[i] for i in group["params"]]}
            for group in state["param_groups"]
        ],
    }


def _restore(
    state: TrainingState,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    if torch.distributed.is_initialized():
        options = StateDictOptions(full_state_dict=True)
        set_optimizer_state_dict(model, optimizer, state.optimizer, options=options)
    else:
        optimizer.load_state_dict(_indexed_optimizer_state(model, optimizer, state.optimizer))
    schedule.load_state_dict(state.schedule)
    generator.set_state(state.rng["data"])
    torch.set_rng_state(state.rng["torch"])


def _indexed_optimizer_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, named: dict[str, Any]
) -> dict[str, Any]:
    """The inverse of :func:`_named_optimizer_state`, for ``optimizer.load_state_dict``."""
    index = {name: i for i, name in enumerate(_parameter_order(model, optimizer))}
    return {
        "state": {index[name]: values for name, values in named["state"].items()},
        "param_groups": [
            {**group, "params": [index[n] for n in group["params"]]}
            for group in named["param_groups"]
        ],
    }


def _parameter_order(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """Parameter names in the optimizer's index order (its state_dict's integer keys)."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


def mask_report(model: nn.Module, worker: Worker) -> dict[str, Any]:
    """Per rank: a checksum of every mask and the largest |weight| at masked entries of
    this rank's shard (0.0 when the invariant holds)."""
    import hashlib

    digest, largest, checked = hashlib.sha256(), 0.0, 0
    for layer in sparse_layers(model):
        if layer.mask is None:
            continue
        digest.update(layer.mask.cpu().numpy().tobytes())
        local = local_tensor(layer.weight).detach()
        masked = local[~local_shard(layer.mask, layer.weight)]
        checked += masked.numel()
        largest = max(largest, masked.abs().max().item() if masked.numel() else 0.0)
    mine = {"checksum": digest.hexdigest()[:16], "masked_max_abs": largest, "checked": checked}
    return {"ranks": worker.gather(mine)}
