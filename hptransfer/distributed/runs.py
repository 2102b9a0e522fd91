"""A transfer's targets on Ray Train, one after another, into its results tables.

Each run trains into ``<sweep>/targets/<trial_id>/`` (checkpoints, artifact), on a disk or in
object storage as the sweep folder is; its curve points are written to the curves table as
they arrive and its row to the trials table when it ends. Stored runs are skipped; an
unfinished one resumes from its last checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from hptransfer.config import RunConfig
from hptransfer.distributed.progress import Record
from hptransfer.distributed.run import TargetFailedError, run_target
from hptransfer.errors import ConfigError
from hptransfer.runtime.cluster import Execution
from hptransfer.runtime.identity import point_id, trial_id, trial_row
from hptransfer.runtime.resources import TargetConfig
from hptransfer.store import Location, ResultsStore
from hptransfer.store.folder import TARGETS_DIR
from hptransfer.trackers.targets import TargetTracking

ERROR_CHARS = 2000


def check_optimizer(target: TargetConfig, runs: Sequence[RunConfig]) -> None:
    """Refuse Muon on FSDP2 (not measured yet) before anything is described or trained."""
    if target.strategy == "fsdp" and any(run.train.optimizer == "muon" for run in runs):
        raise ConfigError(
            "train.optimizer muon with target.strategy fsdp is not supported yet: Muon "
            "orthogonalizes whole matrices, FSDP2 shards them by rows; use strategy ddp"
        )


def train_targets(
    runs: Sequence[RunConfig],
    store: ResultsStore,
    target: TargetConfig,
    *,
    sweep: str,
    spec_hash: str = "",
    execution: Execution | None = None,
    restart: bool = False,
) -> pd.DataFrame:
    """Train the runs not stored yet; the stored rows of ``runs``, in order."""
    check_optimizer(target, runs)
    execution = execution or Execution()
    ids = [trial_id(point_id(run), run.seed) for run in runs]
    with store.lock():
        stored = store.read_trials()
        done = set(stored.loc[stored["status"].eq("completed"), "trial_id"])
        tracking = TargetTracking(execution, sweep, spec_hash)
        for run, tid in zip(runs, ids, strict=True):
            if tid in done and not restart:
                continue
            with tracking.target(run, tid, target) as follower:
                outcome, curve = _train_one(run, tid, store, target, execution, restart, follower)
                follower.end(failed=outcome["status"] == "error")
            row = trial_row(point_id(run), run, sweep, spec_hash, outcome)
            store.append([row], [{"trial_id": tid, **point} for point in curve])
        trials = store.read_trials()
    return trials.set_index("trial_id").reindex(ids).reset_index()


def target_folder(store: ResultsStore, tid: str) -> Location:
    return store.directory / TARGETS_DIR / tid


def _train_one(
    run: RunConfig,
    tid: str,
    store: ResultsStore,
    target: TargetConfig,
    execution: Execution,
    restart: bool,
    on_progress: Callable[[Record], None],
) -> tuple[dict, list[dict]]:
    """The run's outcome (metrics and status) and its curve; ``on_progress`` takes each
    progress record (the trackers')."""
    try:
        result = run_target(
            run,
            target,
            target_folder(store, tid),
            execution=execution,
            restart=restart,
            on_points=lambda curve: store.append_curve(tid, curve),
            on_progress=on_progress,
        )
    except TargetFailedError as exc:
        return {"status": "error", "error": str(exc)[-ERROR_CHARS:]}, []
    return {**result.metrics, "status": "completed"}, result.curve
