"""Data parallelism for a built model: DDP or FSDP2, applied after the model exists.

The model code knows nothing of this. Every rank builds the same model from the run's seed
(same initial weights, same masks), then :func:`parallelize` wraps it; the optimizer is
built afterwards on the (possibly sharded) parameters with the same per-group HPs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class Worker:
    """This process's place in the worker group (rank 0 of 1 without a process group)."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def mean(self, value: float) -> float:
        """The mean of ``value`` over all workers (``value`` itself for one worker)."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        total = torch.tensor(value, dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return (total / self.world).item()

    def gather(self, value: object) -> list[object]:
        """``value`` of every worker, in rank order."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        values: list[object] = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def share(
        self, x: torch.Tensor, y: torch.Tensor, micro: int
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """This worker's rows of a global batch, in micro-batches of ``micro`` rows."""
        rows = x.shape[0] // self.world
        part = slice(self.rank * rows, (self.rank + 1) * rows)
        xs, ys = x[part].split(micro), y[part].split(micro)
        return [(a.to(self.device), b.to(self.device)) for a, b in zip(xs, ys, strict=True)]


def parallelize(model: nn.Module, strategy: str, worker: Worker) -> nn.Module:
    """The module to train: ``model`` wrapped in DDP, or sharded in place by FSDP2
    (each GPT block, then the rest), or ``model`` itself for one worker."""
    if worker.world == 1:
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [worker.device.index] if worker.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)
    from torch.distributed.fsdp import fully_shard

    for block in getattr(model, "blocks", ()):
        fully_shard(block)
    fully_shard(model)
    return model


def without_gradient_sync(module: nn.Module) -> Callable[[], AbstractContextManager]:
    """A context in which backward passes accumulate gradients locally, unexchanged: DDP's
    ``no_sync``, FSDP2's ``set_requires_gradient_sync(False)``; a no-op for one worker."""
    if hasattr(module, "no_sync"):
        return module.no_sync
    if hasattr(module, "set_requires_gradient_sync"):
        return lambda: _fsdp_local_gradients(module)
    return contextlib.nullcontext


@contextlib.contextmanager
def _fsdp_local_gradients(module: nn.Module) -> Iterator[None]:
    module.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        module.set_requires_gradient_sync(True)
