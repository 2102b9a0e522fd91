"""A sweep's trials in the trackers, through a Ray Tune logger callback on the driver.

Each trial is one tracked run: its config is what it trains (:func:`run_config`: Tune's own
trial config is only a job number or an Optuna suggestion), its metrics are the curve by
training step. A trial that trains several runs in turn (an Optuna point, one run per seed)
logs them one after another on its step axis: run ``i`` at ``i × steps + step``.

Imports Ray: import this module only inside a Ray session (:mod:`hptransfer.runtime.cluster`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ray.tune.experiment import Trial
from ray.tune.logger import LoggerCallback

from hptransfer.trackers.backends import Experiment, TrackedRun
from hptransfer.trackers.describe import run_config

if TYPE_CHECKING:
    from hptransfer.runtime.cluster import Execution
    from hptransfer.sweep.run import TuneFit

TRIAL_METRICS = ("train_loss", "val_loss", "tokens", "objective")


@dataclass(frozen=True)
class TrialInfo:
    """A trial as the trackers show it: its run name, config, and where each of its runs
    starts on its step axis."""

    name: str
    config: dict[str, Any]
    offsets: tuple[int, ...]


class TrackerCallback(LoggerCallback):
    """Logs every trial of a Tune run to ``experiment``'s trackers."""

    def __init__(self, experiment: Experiment, describe: Callable[[Trial], TrialInfo]) -> None:
        self.experiment, self.describe = experiment, describe
        self.runs: dict[str, tuple[TrackedRun, tuple[int, ...]]] = {}

    def log_trial_start(self, trial: Trial) -> None:
        if trial.trial_id in self.runs:  # a retried trial goes on in the same tracked run
            return
        info = self.describe(trial)
        run = self.experiment.start(info.name, info.config, kind="trial")
        self.runs[trial.trial_id] = (run, info.offsets)

    def log_trial_result(self, iteration: int, trial: Trial, result: dict) -> None:
        if trial.trial_id not in self.runs:
            self.log_trial_start(trial)
        run, offsets = self.runs[trial.trial_id]
        step = offsets[int(result["run"])] + int(result["step"])
        run.log([(step, {key: result[key] for key in TRIAL_METRICS if key in result})])

    def log_trial_end(self, trial: Trial, failed: bool = False) -> None:
        if trial.trial_id in self.runs:
            self.runs.pop(trial.trial_id)[0].close(failed)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self.close()

    def close(self) -> None:
        """End the runs still open (trials a Ctrl-C cut short) as failed."""
        self.experiment.close()
        self.runs.clear()


def tune_trackers(fit: TuneFit, execution: Execution) -> list[TrackerCallback]:
    """The callback logging ``fit``'s trials to ``execution.trackers``; none without any."""
    if not execution.trackers:
        return []
    experiment = Experiment(execution.trackers, fit.recorder.sweep, verbose=execution.verbose)
    return [TrackerCallback(experiment, lambda trial: describe_trial(fit, trial))]


def describe_trial(fit: TuneFit, trial: Trial) -> TrialInfo:
    """What ``trial`` trains: a grid job's runs, or the template with an Optuna suggestion."""
    from hptransfer.runtime.identity import trial_id
    from hptransfer.sweep.trainable import trial_runs

    job = fit.jobs[trial.config.get("job", 0)]
    runs = trial_runs(job, trial.config)
    point = job.point_id if fit.searcher is None else ""
    name = trial_id(point, runs[0].seed) if point else f"{job.point_id}-{trial.trial_id}"
    config = run_config(runs, point, fit.recorder.sweep, fit.recorder.spec_hash)
    offsets = tuple(sum(run.train.steps for run in runs[:index]) for index in range(len(runs)))
    return TrialInfo(name, config, offsets)
