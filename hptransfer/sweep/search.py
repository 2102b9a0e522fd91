"""Optuna search, one study per cell (parameterization × width × density × depth).

Each cell's study lives in a real Optuna storage, so ``optuna-dashboard <storage>`` shows
it live: a JournalStorage file in the sweep's folder (``optuna.journal``), or the database
of ``search.storage`` (any RDB URL). The study is named ``<sweep>.<cell key>`` and records
its search space; a study of that name with another space is refused.

The store stays the source of truth for resuming: a resumed sweep loads the same study,
marks the trials a killed driver left running as failed, tells it every stored point it
lacks (a point whose seeds all finished, with its mean objective over seeds), and runs only
the remaining samples. Points are numbered ``<cell key>-n<number>``, continuing after the
stored numbers.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hptransfer.config import RunConfig
from hptransfer.errors import BackendUnavailableError, ConfigError
from hptransfer.runtime.identity import config_hash
from hptransfer.store import HP_COLUMNS
from hptransfer.store.folder import OPTUNA_JOURNAL_FILE
from hptransfer.sweep.spec import SearchSpec, SweepSpec
from hptransfer.sweep.trials import Job, objective, with_hps


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


def study_storage(spec: SweepSpec, directory: Path) -> Any:
    """The Optuna storage of the sweep's studies, connected (a one-line error if not)."""
    import optuna

    url = spec.search.storage
    if url is None and not isinstance(directory, Path):
        raise ConfigError(
            f"an Optuna search keeps its study in a journal file, which cannot live in object "
            f"storage ({directory}): give search.storage a database URL (postgresql://...), "
            "or a local --results folder"
        )
    if url is None:
        backend = optuna.storages.journal.JournalFileBackend(str(directory / OPTUNA_JOURNAL_FILE))
        return optuna.storages.journal.JournalStorage(backend)
    import sqlalchemy.exc

    shown = _redacted(url)
    try:
        return optuna.storages.RDBStorage(_with_driver(url))
    except ImportError as exc:
        missing = getattr(exc.__cause__ or exc, "name", None) or "its database driver"
        raise BackendUnavailableError(
            f"search.storage {shown} needs {missing!r}: pip install it "
            "(PostgreSQL: psycopg2-binary)"
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise BackendUnavailableError(f"cannot use search.storage {shown}: {detail}") from None


def _with_driver(url: str) -> str:
    """``postgresql://`` with the installed driver: SQLAlchemy's default (psycopg 3), or
    psycopg2 when only that one is installed."""
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if scheme != "postgresql" or importlib.util.find_spec("psycopg") is not None:
        return url
    return f"postgresql+psycopg2{sep}{rest}" if importlib.util.find_spec("psycopg2") else url


def _redacted(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return repr(url.split("@")[-1])


def optuna_searcher(spec: SweepSpec, plan: CellPlan, storage: Any, verbose: bool) -> Any:
    """Ray's OptunaSearch over the spec's space, seeded, on the cell's study in ``storage``
    (told the stored points it lacks)."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)

    space = {
        hp.name: optuna.distributions.CategoricalDistribution(list(hp.values))
        if hp.is_discrete
        else optuna.distributions.FloatDistribution(hp.low, hp.high, log=hp.log)
        for hp in spec.search.space
    }
    study = open_study(spec, plan, storage)
    searcher = OptunaSearch(
        space=space,
        metric="objective",
        mode="min",
        sampler=_sampler(spec.search),
        study_name=study.study_name,
        storage=storage,
    )
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    told = Counter(_point_key(trial.params) for trial in complete)
    for params, value in plan.finished:
        if told[_point_key(params)] > 0:
            told[_point_key(params)] -= 1
        else:
            searcher.add_evaluated_point(params, value)
    return searcher


def open_study(spec: SweepSpec, plan: CellPlan, storage: Any) -> Any:
    """The cell's study, created or loaded; its search space checked, its stale trials (left
    running by a killed driver) marked failed."""
    import optuna

    name = f"{spec.name}.{plan.key}"
    study = optuna.create_study(
        storage=storage, study_name=name, direction="minimize", load_if_exists=True
    )
    searched = json.dumps({hp.name: hp.to_dict() for hp in spec.search.space}, sort_keys=True)
    recorded = study.user_attrs.get("search_space")
    if recorded is None:
        study.set_user_attr("search_space", searched)
    elif recorded != searched:
        raise ConfigError(
            f"the Optuna study {name!r} in {_where(spec)} searches another space ({recorded}, "
            f"not {searched}): delete that study, or rename the sweep"
        )
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    return study


def _where(spec: SweepSpec) -> str:
    return OPTUNA_JOURNAL_FILE if spec.search.storage is None else _redacted(spec.search.storage)


def _point_key(params: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((name, float(value)) for name, value in params.items()))


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
