"""Driver-side Tune callback: gathers each trial's reported metrics and curve points and
appends them to the store the moment the trial ends (so no shared filesystem is needed).

Imports Ray: import this module only after :func:`hptransfer.runtime.cluster.configure_env`.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler
from ray.tune.stopper import Stopper

from hptransfer.runtime.identity import trial_row
from hptransfer.store import ResultsStore
from hptransfer.sweep.report import Progress
from hptransfer.sweep.trainable import SUMMARY_FIELDS
from hptransfer.sweep.trials import Job, twin_row

CURVE_KEYS = ("step", "tokens", "train_loss", "val_loss")
ERROR_CHARS = 4000


class RecordingASHA(ASHAScheduler):
    """ASHA that remembers which trials it stopped (to tell them from interrupted ones)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.stopped: set[str] = set()

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == self.STOP:
            self.stopped.add(trial.trial_id)
        return action


class Recorder(Callback):
    """Stores every run of a finished trial: completed, early-stopped (by ASHA) or failed.

    A run cut short for any other reason (Ctrl-C, a killed driver) is not stored, so that
    resuming trains it again. ``job_of`` maps a Tune trial to the job it trains.
    """

    def __init__(
        self,
        store: ResultsStore,
        job_of: Callable[[Trial], Job],
        *,
        sweep: str,
        spec_hash: str,
        progress: Progress,
        asha: RecordingASHA | None = None,
    ):
        self.store = store
        self.job_of = job_of
        self.sweep = sweep
        self.spec_hash = spec_hash
        self.progress = progress
        self.asha = asha
        self.curves: dict[str, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
        self.summaries: dict[str, dict[int, dict]] = defaultdict(dict)
        # A store write that failed: nothing more is written, and ``stopper`` ends the sweep.
        self.failure: Exception | None = None
        self.stopper = _StopOnFailure(self)

    def on_trial_result(self, iteration: int, trials: list, trial: Trial, result: dict, **_):
        run = int(result["run"])
        curve = self.curves[trial.trial_id][run]
        # The last point comes with the summary; a diverged run's was also reported alone.
        if not curve or curve[-1]["step"] != result["step"]:
            curve.append({k: result[k] for k in (*CURVE_KEYS, "wall_s")})
        if result.get("run_done"):
            self.summaries[trial.trial_id][run] = {k: result[k] for k in SUMMARY_FIELDS}

    def on_trial_recover(self, iteration: int, trials: list, trial: Trial, **_):
        # The trial starts again from its first step: what its failed attempt reported goes.
        self.curves.pop(trial.trial_id, None)
        self.summaries.pop(trial.trial_id, None)

    def on_trial_complete(self, iteration: int, trials: list, trial: Trial, **_):
        self._store(trial, error=None)

    def on_trial_error(self, iteration: int, trials: list, trial: Trial, **_):
        self._store(trial, error=_error_text(trial)[-ERROR_CHARS:])

    def _store(self, trial: Trial, error: str | None) -> None:
        job = self.job_of(trial)
        stopped = self.asha is not None and trial.trial_id in self.asha.stopped
        summaries = self.summaries.pop(trial.trial_id, {})
        curves = self.curves.pop(trial.trial_id, {})
        rows, points = [], []
        for index, run in enumerate(job.runs):
            outcome = self._outcome(summaries.get(index), curves.get(index, []), stopped, error)
            if outcome is None:
                continue
            row = trial_row(job.point_id, run, self.sweep, self.spec_hash, outcome)
            twins = [twin_row(row, twin, self.sweep, self.spec_hash) for twin in job.twins]
            for stored in (row, *twins):
                rows.append(stored)
                points += [
                    {"trial_id": stored["trial_id"], **{k: p[k] for k in CURVE_KEYS}}
                    for p in curves.get(index, [])
                ]
        if rows and self.failure is None:
            try:
                self.store.append(rows, points)
            except Exception as exc:  # raised once the sweep has stopped (run._fit)
                self.failure = exc
                return
            self.progress.record(rows)

    @staticmethod
    def _outcome(
        summary: dict | None, curve: list[dict], stopped: bool, error: str | None
    ) -> dict | None:
        if summary is not None:
            return {**summary, "status": "completed"}
        if stopped and curve:
            last = curve[-1]
            return {**last, "steps": last["step"], "status": "early_stopped"}
        if error is not None:
            return {"status": "error", "error": error}
        return None  # interrupted: train it again on resume


class _StopOnFailure(Stopper):
    """Stops every trial once the recorder could not write (a full disk, a damaged table):
    an exception in a Tune callback would only fail, and retry, the trial at hand."""

    def __init__(self, recorder: Recorder):
        self.recorder = recorder

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.recorder.failure is not None


def _error_text(trial: Trial) -> str:
    """The trial's traceback: Tune writes it to the trial's local folder before this runs
    (``trial.get_error`` reads the storage copy, which is synced later)."""
    path = trial.error_file
    if path and os.path.exists(path):
        with open(path) as handle:
            return handle.read()
    return str(trial.get_error() or "unknown error")
