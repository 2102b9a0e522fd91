"""What runs need and where they run: the spec's ``resources:``, ``ray:`` and ``target:``.

:class:`Resources` is one trial's share of a sweep's cluster; :class:`RayOptions` says which
Ray; :class:`TargetConfig` how a target trains: workers, strategy, precision, checkpoints.
None of it changes what is computed, up to floating-point reassociation: a target's global
batch is the run's (the target's batch, by default the proxy's), split evenly across workers
and, inside a worker, into micro-batches.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hptransfer.errors import ConfigError

STRATEGIES = ("ddp", "fsdp")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class Resources:
    """Per-trial resources; ``max_concurrent`` None means CPUs available / cpus_per_trial.

    ``max_retries``: how many times a trial whose worker died (or that raised: Tune cannot
    tell them apart) runs again before it is stored with status ``error``.
    """

    cpus_per_trial: int = 1
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    max_retries: int = 1


@dataclass(frozen=True)
class RayOptions:
    """``address`` None starts an embedded local Ray; otherwise attach (e.g. ``host:6379``)."""

    address: str | None = None


@dataclass(frozen=True)
class TargetConfig:
    """``workers`` Ray Train workers with ``cpus_per_worker``/``gpus_per_worker`` each.

    ``strategy``: ``ddp`` (a full replica per worker) or ``fsdp`` (FSDP2: parameters, grads
    and optimizer state sharded). ``precision``: ``auto`` is bf16 on CUDA and fp32 on CPU;
    bf16 is autocast with fp32 master weights and optimizer state. ``micro_batch``: rows per
    forward/backward inside a worker (gradient accumulation; default: the worker's share).
    ``checkpoint_every`` steps (and at the end) a checkpoint is kept, the last
    ``keep_checkpoints`` of them; ``max_failures`` worker failures are retried from the last.
    """

    workers: int = 1
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0
    strategy: str = "ddp"
    precision: str = "auto"
    micro_batch: int | None = None
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    max_failures: int = 1
    compile: bool = False

    def __post_init__(self) -> None:
        for name in ("workers", "cpus_per_worker", "checkpoint_every", "keep_checkpoints"):
            _positive_int(f"target.{name}", getattr(self, name))
        if self.micro_batch is not None:
            _positive_int("target.micro_batch", self.micro_batch)
        if not isinstance(self.max_failures, int) or self.max_failures < 0:
            raise ConfigError(f"target.max_failures must be >= 0; got {self.max_failures!r}")
        if not isinstance(self.gpus_per_worker, (int, float)) or self.gpus_per_worker < 0:
            raise ConfigError(f"target.gpus_per_worker must be >= 0; got {self.gpus_per_worker!r}")
        _one_of("target.strategy", self.strategy, STRATEGIES)
        _one_of("target.precision", self.precision, PRECISIONS)
        if self.strategy == "fsdp" and self.workers == 1:
            raise ConfigError(
                "target.strategy fsdp with 1 worker shards nothing: use ddp, or workers >= 2"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TargetConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown target key(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}"
            )
        return cls(**values)

    def resolved_precision(self, device_type: str) -> str:
        if self.precision != "auto":
            return self.precision
        return "bf16" if device_type == "cuda" else "fp32"

    def micro_batches(self, global_batch: int) -> tuple[int, int]:
        """(rows per micro-batch, micro-batches per step) of one worker."""
        if global_batch % self.workers:
            raise ConfigError(
                f"the batch size ({global_batch}) must be divisible by the workers "
                f"({self.workers}): each worker takes an equal share of the target's batch"
            )
        share = global_batch // self.workers
        micro = self.micro_batch or share
        if share % micro:
            raise ConfigError(
                f"--micro-batch {micro} must divide each worker's share of the batch ({share} = "
                f"{global_batch} / {self.workers} workers)"
            )
        return micro, share // micro


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer; got {value!r}")


def _one_of(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
