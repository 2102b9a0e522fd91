"""Optuna search, one study per cell (parameterization × width × density × depth).

A cell's study is resumed from the store: every stored point whose seeds all finished is
told to the sampler (with its mean objective over seeds), and only the remaining samples
run. Points are numbered ``<cell key>-n<number>``, continuing after the stored numbers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pandas as pd

from hptransfer.config import RunConfig
from hptransfer.errors import BackendUnavailableError
from hptransfer.store import HP_COLUMNS
from hptransfer.sweep.spec import SearchSpec, SweepSpec
from hptransfer.sweep.trials import Job, config_hash, objective, with_hps


@dataclass
class CellPlan:
    """A cell's study: template job (one run per seed), finished points, numbering."""

    key: str
    template: Job
    finished: list[tuple[dict[str, float], float]]
    remaining: int
    next_sample: int
    assigned: dict[str, Job] = dataclasses.field(default_factory=dict)

    def job_of(self, trial: Any) -> Job:
        """The job of a Tune trial: the template with the trial's suggested HPs, numbered
        in the order trials end (numbers continue after the stored ones)."""
        if trial.trial_id not in self.assigned:
            point = f"{self.key}-n{self.next_sample:04d}"
            self.next_sample += 1
            runs = tuple(with_hps(run, _suggested(trial.config)) for run in self.template.runs)
            self.assigned[trial.trial_id] = Job(point, runs)
        return self.assigned[trial.trial_id]


def plan_cell(spec: SweepSpec, cell: RunConfig, trials: pd.DataFrame) -> CellPlan:
    key = config_hash(cell)[:8]
    mine = trials[trials["point_id"].str.startswith(f"{key}-n")]
    numbers = [int(p.rsplit("-n", 1)[1]) for p in mine["point_id"]]
    finished = []
    for _, rows in mine.groupby("point_id"):
        if (rows["status"] != "error").all() and set(rows["seed"]) == set(spec.seeds):
            scores = [objective(*r) for r in rows[["val_loss", "train_loss", "diverged"]].values]
            params = {name: float(rows[name].iloc[0]) for name in spec.search.names}
            finished.append((params, sum(scores) / len(scores)))
    template = Job(key, tuple(with_hps(cell, {}, seed) for seed in spec.seeds))
    return CellPlan(
        key=key,
        template=template,
        finished=finished,
        remaining=spec.search.num_samples - len(finished),
        next_sample=max(numbers, default=-1) + 1,
    )


def _suggested(config: dict[str, Any]) -> dict[str, float]:
    return {name: float(config[name]) for name in HP_COLUMNS if name in config}


def optuna_searcher(
    spec: SweepSpec, finished: list[tuple[dict[str, float], float]], verbose: bool
) -> Any:
    """Ray's OptunaSearch over the spec's space, seeded, told the points already stored."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)

    space = {
        hp.name: optuna.distributions.CategoricalDistribution(list(hp.values))
        if hp.is_discrete
        else optuna.distributions.FloatDistribution(hp.low, hp.high, log=hp.log)
        for hp in spec.search.space
    }
    searcher = OptunaSearch(
        space=space, metric="objective", mode="min", sampler=_sampler(spec.search)
    )
    for params, value in finished:
        searcher.add_evaluated_point(params, value)
    return searcher


def _sampler(search: SearchSpec) -> Any:
    import optuna

    if search.sampler == "cmaes":
        try:
            import cmaes  # noqa: F401  (optuna's CMA-ES sampler needs it)
        except ImportError:
            raise BackendUnavailableError(
                "search.sampler cmaes needs the cmaes package: pip install cmaes"
            ) from None
    samplers = {
        "tpe": optuna.samplers.TPESampler,
        "gp": optuna.samplers.GPSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "random": optuna.samplers.RandomSampler,
    }
    return samplers[search.sampler](seed=search.seed)
