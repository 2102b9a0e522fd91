"""Writing to the trackers: one tracked run per trial or target, its config once, then its
metrics by training step.

Each tracker is imported only here, when an experiment opens (:class:`Experiment`); it stays
quiet unless ``verbose``. A tracker that fails while a sweep runs is dropped with one warning:
an outage of the tracker never stops the training (the Parquet store is the record).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from hptransfer.errors import BackendUnavailableError
from hptransfer.trackers import Tracker

Metrics = dict[str, float]
Entry = tuple[int, Metrics]  # (training step, metrics at it)
Config = Mapping[str, str | int | float | bool]
DEFAULT_WANDB_PROJECT = "hptransfer"
DEFAULT_TENSORBOARD_DIR = "tensorboard"
MLFLOW_BATCH = 1000  # MLflow takes at most this many metrics per log_batch call

log = logging.getLogger(__name__)


class Handle(Protocol):
    """A run open in one tracker."""

    def log(self, entries: Sequence[Entry]) -> None: ...

    def close(self, failed: bool) -> None: ...


class Backend(Protocol):
    """One tracker for one experiment: opens its runs."""

    name: str

    def start(self, name: str, config: Config, kind: str) -> Handle: ...


class TrackedRun:
    """A run in every tracker of the experiment. Metrics go in by training step, each step
    once and in increasing order (a retried attempt's repeated steps are skipped), non-finite
    values left out."""

    def __init__(self, handles: dict[str, Handle]) -> None:
        self.handles = handles
        self.last_step = -1
        self.closed = False

    def log(self, entries: Iterable[Entry]) -> None:
        merged: dict[int, Metrics] = {}
        for step, metrics in entries:
            if step > self.last_step:
                finite = {k: float(v) for k, v in metrics.items() if math.isfinite(v)}
                merged.setdefault(step, {}).update(finite)
        if merged:
            self.last_step = max(merged)
            ordered = sorted(merged.items())
            self._each("log", lambda handle: handle.log(ordered))

    def close(self, failed: bool = False) -> None:
        if not self.closed:
            self.closed = True
            self._each("close", lambda handle: handle.close(failed))

    def _each(self, what: str, call: Callable[[Handle], None]) -> None:
        for name, handle in list(self.handles.items()):
            try:
                call(handle)
            except Exception as exc:  # a tracker's outage must not stop the training
                del self.handles[name]
                log.warning("%s: %s failed (%s); not logging to it any more", name, what, exc)


class Experiment:
    """The trackers of one sweep or transfer (``name``: the sweep's): opens each now, so a
    store that cannot be reached fails before anything trains, then one run per trial or
    target; :meth:`close` ends the runs still open (an interrupted sweep's)."""

    def __init__(self, trackers: Sequence[Tracker], name: str, *, verbose: bool = False):
        self.backends: list[Backend] = []
        for tracker in trackers:
            try:
                self.backends.append(BACKENDS[tracker.name](tracker, name, verbose))
            except Exception as exc:
                detail = " ".join(str(exc).split())[:300]
                raise BackendUnavailableError(f"--log {tracker.name}: {detail}") from None
        self.runs: list[TrackedRun] = []

    def start(self, name: str, config: Config, kind: str) -> TrackedRun:
        handles: dict[str, Handle] = {}
        for backend in list(self.backends):
            try:
                handles[backend.name] = backend.start(name, config, kind)
            except Exception as exc:  # e.g. W&B online without an API key: say it once
                self.backends.remove(backend)
                log.warning(
                    "%s: cannot start run %s (%s); not logging to it", backend.name, name, exc
                )
        self.runs.append(TrackedRun(handles))
        return self.runs[-1]

    def close(self) -> None:
        for run in self.runs:
            run.close(failed=True)  # a no-op for the runs that ended


# ------------------------------------------------------------------------------ the trackers


class _Wandb:
    """Weights & Biases: a run per trial in ``project`` (default ``hptransfer`` or
    $WANDB_PROJECT), grouped by sweep; several open at once in this process."""

    name = "wandb"

    def __init__(self, tracker: Tracker, experiment: str, verbose: bool) -> None:
        import wandb

        self.wandb = wandb
        folder = tracker.setting("dir") or os.environ.get("WANDB_DIR") or os.getcwd()
        Path(folder).mkdir(parents=True, exist_ok=True)
        self.init = {
            "project": tracker.setting("project")
            or os.environ.get("WANDB_PROJECT")
            or DEFAULT_WANDB_PROJECT,
            "entity": tracker.setting("entity"),
            "group": tracker.setting("group") or experiment,
            "mode": tracker.setting("mode"),  # None: $WANDB_MODE, else online
            "dir": folder,
        }
        self.settings = wandb.Settings(silent=not verbose, console="off", x_disable_stats=True)

    def start(self, name: str, config: Config, kind: str) -> Handle:
        run = self.wandb.init(
            name=name,
            config=dict(config),
            job_type=kind,
            reinit="create_new",
            settings=self.settings,
            **self.init,
        )
        return _WandbRun(run)


class _WandbRun:
    def __init__(self, run: Any) -> None:
        self.run = run

    def log(self, entries: Sequence[Entry]) -> None:
        for step, metrics in entries:
            self.run.log(metrics, step=step)

    def close(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)


class _MLflow:
    """MLflow: a run per trial in the experiment named after the sweep, at ``tracking_uri``
    (default $MLFLOW_TRACKING_URI, else MLflow's own default)."""

    name = "mlflow"

    def __init__(self, tracker: Tracker, experiment: str, verbose: bool) -> None:
        for logger in ("mlflow", "alembic"):  # MLflow logs each store migration at INFO
            logging.getLogger(logger).setLevel(logging.INFO if verbose else logging.WARNING)
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracker.setting("tracking_uri"))
        name = tracker.setting("experiment") or experiment
        found = self.client.get_experiment_by_name(name)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(name)

    def start(self, name: str, config: Config, kind: str) -> Handle:
        from mlflow.entities import Param

        run = self.client.create_run(self.experiment_id, run_name=name, tags={"kind": kind})
        params = [Param(key, str(value)) for key, value in config.items()]
        self.client.log_batch(run.info.run_id, params=params)
        return _MLflowRun(self.client, run.info.run_id)


class _MLflowRun:
    def __init__(self, client: Any, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    def log(self, entries: Sequence[Entry]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(key, value, now, step) for step, row in entries for key, value in row.items()
        ]
        for start in range(0, len(metrics), MLFLOW_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + MLFLOW_BATCH])

    def close(self, failed: bool) -> None:
        self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")


class _TensorBoard:
    """TensorBoard: event files in ``<dir>/<sweep>/<run>/`` (default ``dir``: ./tensorboard),
    the config as the run's hyperparameters (the HParams dashboard)."""

    name = "tensorboard"

    def __init__(self, tracker: Tracker, experiment: str, verbose: bool) -> None:
        self.folder = Path(tracker.setting("dir") or DEFAULT_TENSORBOARD_DIR) / experiment
        self.folder.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, config: Config, kind: str) -> Handle:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        writer = SummaryWriter(log_dir=str(self.folder / name))
        experiment, session_start, session_end = hparams(
            {**config, "kind": kind}, dict.fromkeys(METRICS)
        )
        writer.file_writer.add_summary(experiment)
        writer.file_writer.add_summary(session_start)
        return _TensorBoardRun(writer, session_end)


class _TensorBoardRun:
    def __init__(self, writer: Any, session_end: Any) -> None:
        self.writer, self.session_end = writer, session_end

    def log(self, entries: Sequence[Entry]) -> None:
        for step, metrics in entries:
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()

    def close(self, failed: bool) -> None:
        self.writer.file_writer.add_summary(self.session_end)
        self.writer.close()


# The metrics TensorBoard's HParams dashboard shows beside a run's config.
METRICS = ("train_loss", "val_loss", "loss")
BACKENDS: dict[str, Callable[[Tracker, str, bool], Backend]] = {
    "wandb": _Wandb,
    "mlflow": _MLflow,
    "tensorboard": _TensorBoard,
}
