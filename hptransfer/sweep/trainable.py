"""The function Ray Tune runs in a worker: train a job's runs and report every metric.

Reports, in order, for each run ``i`` of the job: one result per evaluation point
(``step, tokens, train_loss, val_loss``) but the last, then one with the last point,
``run_done`` and the run's summary.
Every result carries ``objective`` (the point's loss, or the mean over finished runs), the
metric the searcher and ASHA read. The driver's recorder turns these into store rows.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from typing import Any

from hptransfer import provenance
from hptransfer.config import RunConfig
from hptransfer.store import HP_COLUMNS
from hptransfer.sweep.trials import Job, objective, with_hps

RESULT_FIELDS = (
    "train_loss", "val_loss", "val_loss_se", "diverged", "steps", "tokens", "wall_s", "kernel",
)  # fmt: skip
# What the last result of a run carries into its stored row: its metrics and provenance.
SUMMARY_FIELDS = (*RESULT_FIELDS, *provenance.FIELDS)


def train_job(
    config: dict[str, Any], *, jobs: Sequence[Job], threads: int, device: str, workdir: str
) -> None:
    """Ray Tune trainable: ``config["job"]`` picks the job (default 0); HPs in ``config``
    (an Optuna suggestion) override the job's. Relative data paths are resolved against
    the driver's ``workdir`` (Tune runs each trial in a directory of its own)."""
    import torch

    torch.set_num_threads(threads)  # one torch thread per CPU of the trial: no oversubscription
    scores: list[float] = []
    for index, run in enumerate(trial_runs(jobs[config.get("job", 0)], config)):
        run = _resolve_data_path(run, workdir)
        scores.append(_train_and_report(run, index, device, scores))


def trial_runs(job: Job, config: dict[str, Any]) -> list[RunConfig]:
    """The runs a trial of ``job`` trains: the job's, with the HPs in ``config`` over theirs."""
    hps = {name: config[name] for name in HP_COLUMNS if name in config}
    return [with_hps(run, hps) for run in job.runs]


def _train_and_report(run: RunConfig, index: int, device: str, scores: list[float]) -> float:
    """Train one run, reporting each evaluation point before the last, then one result with
    the last point and the run's summary (``run_done``), whose ``objective`` is the mean
    over this run and the job's earlier ``scores``. The last point travels with the summary
    so that a scheduler stopping the trial on it (ASHA's top rung) cannot lose the summary."""
    from ray import tune

    from hptransfer.train import train

    start = time.perf_counter()
    tags = {"run": index, "seed": run.seed}

    def report(point: dict[str, float]) -> None:
        if point["step"] >= run.train.steps:
            return
        score = objective(point["val_loss"], point["train_loss"], False)
        wall_s = time.perf_counter() - start  # the wall time of a run ASHA stops
        tune.report({**point, **tags, "objective": score, "wall_s": wall_s})

    result = train(run, on_eval=report, device=device)
    score = objective(result.val_loss, result.train_loss, result.diverged)
    summary = {**{name: getattr(result, name) for name in RESULT_FIELDS}, **result.provenance}
    mean = (sum(scores) + score) / (len(scores) + 1)
    last = result.curve[-1]  # the final evaluation, or the point where the run diverged
    tune.report({**last, **summary, **tags, "run_done": True, "objective": mean})
    return score


def _resolve_data_path(run: RunConfig, workdir: str) -> RunConfig:
    path = run.data.path
    if path is None or os.path.isabs(path):
        return run
    data = dataclasses.replace(run.data, path=os.path.join(workdir, path))
    return dataclasses.replace(run, data=data)
