"""A transfer's Ray Train targets in the trackers, from the driver's progress stream.

Ray Train's RunConfig takes no Tune logger callbacks; a target's rank 0 already sends its
progress records to the driver (:mod:`hptransfer.distributed.progress`), and these become the
target's tracked run: the training loss and throughput of every step, and the curve points
(``train_loss``, ``val_loss``, ``tokens``) at their steps. A resumed target logs the curve its
checkpoint holds first; a retried attempt's repeated steps are logged once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from hptransfer.trackers.backends import Entry, Experiment, TrackedRun
from hptransfer.trackers.describe import run_config

if TYPE_CHECKING:
    from hptransfer.config import RunConfig
    from hptransfer.distributed.progress import Record
    from hptransfer.runtime.cluster import Execution
    from hptransfer.runtime.resources import TargetConfig

POINT_METRICS = ("train_loss", "val_loss", "tokens")
FLUSH_EVERY_S = 5.0  # the trackers get a target's steps in batches (MLflow: one call each)


class TargetTracking:
    """The trackers of one transfer's targets (``execution.trackers``; none: a no-op)."""

    def __init__(self, execution: Execution, sweep: str, spec_hash: str) -> None:
        self.sweep, self.spec_hash = sweep, spec_hash
        self.experiment = (
            Experiment(execution.trackers, sweep, verbose=execution.verbose)
            if execution.trackers
            else None
        )

    @contextlib.contextmanager
    def target(self, run: RunConfig, tid: str, target: TargetConfig) -> Iterator[ProgressFollower]:
        """The follower of one target's progress records; its tracked run ends at
        :meth:`ProgressFollower.end`, or with the block as failed."""
        tracked = None
        if self.experiment is not None:
            from hptransfer.runtime.identity import point_id

            config = run_config([run], point_id(run), self.sweep, self.spec_hash)
            config.update({f"target_{k}": v for k, v in dataclasses.asdict(target).items()})
            tracked = self.experiment.start(tid, config, kind="target")
        follower = ProgressFollower(tracked)
        try:
            yield follower
        finally:
            follower.end(failed=True)  # a no-op once ended


class ProgressFollower:
    """Takes a target's progress records one by one (it is an ``on_progress``) and logs them
    in batches; without a tracked run it does nothing."""

    def __init__(self, tracked: TrackedRun | None) -> None:
        self.tracked = tracked
        self.pending: list[Entry] = []
        self.flushed = time.monotonic()

    def __call__(self, record: Record) -> None:
        if self.tracked is None:
            return
        self.pending += entries(record)
        if time.monotonic() - self.flushed >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if self.tracked is not None:
            self.tracked.log(self.pending)
        self.pending, self.flushed = [], time.monotonic()

    def end(self, failed: bool) -> None:
        if self.tracked is not None and not self.tracked.closed:
            self.flush()
            self.tracked.close(failed)


def entries(record: Record) -> list[Entry]:
    """A progress record as tracker entries: a start record's curve points, or a step's loss
    and throughput (with its curve point, if any)."""
    if "first_step" in record:
        return [(point["step"], _point_metrics(point)) for point in record["curve"]]
    metrics = {"loss": record["loss"], "tokens_per_s": record["tokens_per_s"]}
    return [(record["step"], {**metrics, **_point_metrics(record["point"])})]


def _point_metrics(point: dict[str, Any] | None) -> dict[str, float]:
    return {key: point[key] for key in POINT_METRICS if key in point} if point else {}
