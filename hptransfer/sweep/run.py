"""Orchestration on Ray Tune: embedded local Ray or an existing cluster, grid or Optuna,
optional ASHA, results stored by the driver as trials finish, resumable.

Public entry points: :func:`run_sweep` (a YAML sweep) and :func:`run_trials` (an explicit
list of RunConfigs, e.g. for ``hptransfer transfer``). The Parquet store is the source of
truth for resuming: a run already stored (status other than ``error``) is never run again.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import pandas as pd

from hptransfer.config import RunConfig
from hptransfer.errors import ConfigError, FormatVersionError, ResultsError
from hptransfer.runtime.cluster import (
    TUNE_NAME,
    Execution,
    check_execution,
    clear_killed_session,
    ray_session,
    ray_working_dir,
    tune_storage,
)
from hptransfer.store import ResultsStore, location
from hptransfer.store.folder import CURVES_FILE, TRIALS_FILE
from hptransfer.store.location import remove_tree
from hptransfer.sweep.parse import parse_text
from hptransfer.sweep.report import Progress, best_per_cell, format_summary
from hptransfer.sweep.search import (
    CellPlan,
    open_study,
    optuna_searcher,
    plan_cell,
    study_storage,
)
from hptransfer.sweep.spec import UNHASHED_KEYS, AshaSpec, SweepSpec, diff_keys

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.search import Searcher

    from hptransfer.sweep.recorder import Recorder

from hptransfer.runtime.identity import point_id, run_key, trial_id
from hptransfer.sweep.trials import (
    Job,
    grid_runs,
    jobs_for_runs,
    merge_twins,
    slice_runs,
    slice_variant_ids,
)
from hptransfer.sweep.twins import check_reuse, store_twins_of_stored


@dataclass(frozen=True)
class SweepOutcome:
    """A finished (or interrupted) sweep: its folder, all its stored runs, and counts."""

    directory: Path
    trials: pd.DataFrame
    expected: int
    summary: str

    @property
    def finished(self) -> int:
        return int((self.trials["status"] != "error").sum())

    @property
    def trained(self) -> int:
        """Finished runs trained as themselves (the rest repeat a twin's model: ``same_as``)."""
        stored = self.trials[self.trials["status"] != "error"]
        return int(stored["same_as"].fillna("").eq("").sum())

    @property
    def failed(self) -> int:
        return int((self.trials["status"] == "error").sum())


# -- public API ---------------------------------------------------------------------------


def run_sweep(
    spec: SweepSpec,
    results_root: str | Path = "results",
    *,
    execution: Execution | None = None,
    new: bool = False,
    extend: bool = False,
    reuse: Sequence[Path] = (),
) -> SweepOutcome:
    """Run (or resume) ``spec`` into ``results_root/<name>/``; print progress and a summary.

    Raises ConfigError if that folder holds a different spec, unless ``new``, which first
    moves the old folder aside to ``<name>.replaced-<UTC time>``, or ``extend`` and the spec
    is a grid that still plans every stored run (more values, cells or seeds): those runs
    are kept and only the new ones trained. A grid run whose model is stored in one of the
    ``reuse`` folders is copied from there, not trained.
    """
    execution = execution or Execution(resources=spec.resources, address=spec.ray.address)
    check_execution(execution)
    directory = location(results_root) / spec.name
    check_reuse(reuse, directory)
    check_runs(spec.cells)
    if new and directory.exists():
        move_aside(directory, execution.out)
    store = ResultsStore(directory)
    with store.lock():
        clear_killed_session(directory, execution)
        _check_same_spec(store, spec, extend=extend)
        store.read_curves()  # a corrupt table fails now, not at the first write inside Ray
        store.write_spec(spec.to_yaml())
        if spec.search.algorithm == "grid":
            _run_grid(spec, store, execution, reuse)
        else:
            _run_optuna(spec, store, execution)
        if spec.search.slice is not None:
            _run_slice(spec, store, execution, reuse)
        trials = store.read_trials()
    best = best_per_cell(trials, spec.search.names)
    summary = format_summary(best, spec.search.names)
    print(summary, file=execution.out)
    expected = _expected_runs(spec, trials)
    return SweepOutcome(directory, trials, expected, summary)


def run_trials(
    runs: Sequence[RunConfig],
    results_dir: str | Path,
    *,
    sweep: str,
    spec_hash: str = "",
    execution: Execution | None = None,
    asha: AshaSpec | None = None,
    trials_file: str = TRIALS_FILE,
    curves_file: str = CURVES_FILE,
) -> pd.DataFrame:
    """Train explicit runs through the sweep's Ray orchestration, storing each in
    ``results_dir`` (``trials_file``, ``curves_file``) as it finishes; runs already stored
    there are skipped. Returns the stored rows of ``runs``, in order (``trial_id`` is
    ``f"{point_id(run)}-s{run.seed}"``, a hash of the whole configuration)."""
    execution = execution or Execution()
    check_execution(execution)
    store = ResultsStore(results_dir, trials_file=trials_file, curves_file=curves_file)
    jobs = jobs_for_runs(runs)
    with store.lock():
        clear_killed_session(store.directory, execution)
        store.read_curves()  # a corrupt table fails now, not at the first write inside Ray
        check_runs(runs)
        _train_pending(
            jobs, store, execution, sweep=sweep, spec_hash=spec_hash, asha=asha, searched=()
        )
        trials = store.read_trials()
    ids = [trial_id(job.point_id, job.runs[0].seed) for job in jobs]
    return trials.set_index("trial_id").reindex(ids).reset_index()


def check_runs(runs: Sequence[RunConfig]) -> None:
    """Fail fast, before Ray starts and before anything is written: each run's data loads
    and fits its model; the user's builder builds it (on the meta device) and the user's
    train.fn imports, as the run key (cached) hashes them."""
    from hptransfer.data import load_dataset
    from hptransfer.train import complete_run

    for run in runs:
        run = complete_run(run, load_dataset(run.data))
        if "python" in (run.model.kind, run.train.kind):
            run_key(run)


# -- the two algorithms -------------------------------------------------------------------


def _run_grid(
    spec: SweepSpec, store: ResultsStore, execution: Execution, reuse: Sequence[Path]
) -> None:
    _train_pending(
        jobs_for_runs(grid_runs(spec)),
        store,
        execution,
        reuse,
        sweep=spec.name,
        spec_hash=spec.hash,
        asha=spec.asha,
        searched=spec.search.names,
    )


def _train_pending(
    jobs: Sequence[Job],
    store: ResultsStore,
    execution: Execution,
    reuse: Sequence[Path] = (),
    **recording: Any,
) -> None:
    """Train the jobs not yet stored (one Ray session, started only if there are any): each
    distinct model once (:func:`merge_twins`), and none whose model is stored already, here
    or in the ``reuse`` folders (:mod:`hptransfer.sweep.twins`)."""
    pending = _pending(jobs, store)
    ids = {"sweep": recording["sweep"], "spec_hash": recording["spec_hash"]}
    pending = store_twins_of_stored(pending, jobs, store, reuse, **ids)
    if pending:
        with ray_session(store.directory, execution) as slots:
            _fit_jobs(merge_twins(pending), store, execution, slots, **recording)


def _pending(jobs: Sequence[Job], store: ResultsStore) -> list[Job]:
    trials = store.read_trials()
    done = set(trials.loc[trials["status"] != "error", "trial_id"])
    return [job for job in jobs if not set(job.trial_ids) <= done]


def _fit_jobs(
    jobs: Sequence[Job],
    store: ResultsStore,
    execution: Execution,
    slots: int,
    *,
    sweep: str,
    spec_hash: str,
    asha: AshaSpec | None,
    searched: Sequence[str],
) -> None:
    from ray import tune

    from hptransfer.sweep.recorder import Recorder

    scheduler = _scheduler(asha, jobs[0].runs[0].train.steps)
    progress = Progress(sum(len(job.trial_ids) for job in jobs), searched, execution.out)
    recorder = Recorder(
        store,
        lambda trial: jobs[trial.config["job"]],
        sweep=sweep,
        spec_hash=spec_hash,
        progress=progress,
        asha=scheduler,
    )
    param_space = {"job": tune.grid_search(list(range(len(jobs))))}
    _fit(TuneFit(tuple(jobs), recorder, store, param_space, scheduler=scheduler), execution, slots)


def _run_slice(
    spec: SweepSpec, store: ResultsStore, execution: Execution, reuse: Sequence[Path]
) -> None:
    """The finer slice of ``spec.search.slice.hp`` at each cell's best searched point."""
    trials = store.read_trials()
    runs = [run for cell in spec.cells for run in slice_runs(spec, cell, trials)]
    if runs:
        _train_pending(
            jobs_for_runs(runs),
            store,
            execution,
            reuse,
            sweep=spec.name,
            spec_hash=spec.hash,
            asha=None,
            searched=spec.search.names,
        )


def _run_optuna(spec: SweepSpec, store: ResultsStore, execution: Execution) -> None:
    """One Optuna study per cell (parameterization × width × density × depth), cells in turn."""
    trials = store.read_trials()
    plans = [plan for cell in spec.cells if (plan := plan_cell(spec, cell, trials)).remaining]
    if plans:
        storage = study_storage(spec, store.directory)
        for plan in plans:  # a storage or study that cannot be used fails before Ray starts
            open_study(spec, plan, storage)
        with ray_session(store.directory, execution) as slots:
            _fit_optuna(spec, plans, storage, store, execution, slots)


def _fit_optuna(
    spec: SweepSpec,
    plans: list[CellPlan],
    storage: Any,
    store: ResultsStore,
    execution: Execution,
    slots: int,
) -> None:
    from hptransfer.sweep.recorder import Recorder

    total = sum(plan.remaining for plan in plans) * len(spec.seeds)
    progress = Progress(total, spec.search.names, execution.out)
    for plan in plans:
        scheduler = _scheduler(spec.asha, spec.train.steps)
        recorder = Recorder(
            store,
            plan.job_of,
            sweep=spec.name,
            spec_hash=spec.hash,
            progress=progress,
            asha=scheduler,
        )
        searcher = optuna_searcher(spec, plan, storage, execution.verbose)
        fit = TuneFit((plan.template,), recorder, store, {}, searcher, plan.remaining, scheduler)
        _fit(fit, execution, slots)


# -- Ray Tune -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TuneFit:
    """One Ray Tune run: the jobs its trials train (by index, or the one template an Optuna
    searcher fills in), how trials are drawn and scheduled, and where they are recorded."""

    jobs: tuple[Job, ...]
    recorder: Recorder
    store: ResultsStore
    param_space: dict[str, Any]
    searcher: Searcher | None = None
    num_samples: int = 1
    scheduler: TrialScheduler | None = None


def _fit(fit: TuneFit, execution: Execution, slots: int) -> None:
    from ray import tune

    from hptransfer.sweep.tracking import tune_trackers
    from hptransfer.sweep.trainable import train_job

    resources = execution.resources
    trackers = tune_trackers(fit, execution)  # none without --log
    trainable = tune.with_parameters(
        train_job,
        jobs=list(fit.jobs),
        threads=resources.cpus_per_trial,
        device="cuda" if resources.gpus_per_trial > 0 else "cpu",
        workdir=os.getcwd(),
    )
    tuner = tune.Tuner(
        tune.with_resources(
            trainable, {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial}
        ),
        param_space=fit.param_space,
        tune_config=tune.TuneConfig(
            search_alg=fit.searcher,
            scheduler=fit.scheduler,
            num_samples=fit.num_samples,
            max_concurrent_trials=resources.max_concurrent or slots,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=TUNE_NAME,
            **tune_storage(fit.store.directory),
            verbose=2 if execution.verbose else 0,
            callbacks=[fit.recorder, *trackers],
            stop=fit.recorder.stopper,
            # A trial whose worker died (or that raised) runs again from its start.
            failure_config=tune.FailureConfig(max_failures=resources.max_retries),
        ),
    )
    try:
        tuner.fit()
    finally:
        for tracker in trackers:
            tracker.close()
        # pickles: nothing to keep
        remove_tree(ray_working_dir(fit.store.directory) / TUNE_NAME)
    if fit.recorder.failure is not None:  # the store refused a write: say why, in one line
        raise _store_failure(fit.recorder.failure, fit.store) from None


def _store_failure(exc: BaseException, store: ResultsStore) -> BaseException:
    if isinstance(exc, OSError):
        return ResultsError(f"cannot write results in {store.directory}: {exc.strerror or exc}")
    return exc


def _scheduler(asha: AshaSpec | None, max_steps: int) -> Any:
    if asha is None:
        return None
    from hptransfer.sweep.recorder import RecordingASHA

    # stop_last_trials=False: a trial that reaches max_t ends on its own and reports its
    # summary, instead of being cut off at its last evaluation.
    return RecordingASHA(
        time_attr="step",
        metric="objective",
        mode="min",
        max_t=max_steps,
        grace_period=asha.grace_period,
        reduction_factor=asha.reduction_factor,
        brackets=asha.brackets,
        stop_last_trials=False,
    )


# -- spec bookkeeping ---------------------------------------------------------------------


def _check_same_spec(store: ResultsStore, spec: SweepSpec, *, extend: bool = False) -> None:
    text = store.read_spec()
    if text is None:
        hashes = set(store.read_trials()["spec_hash"]) - {spec.hash}
        if hashes and not extend:
            raise ConfigError(_changed_message(store, spec, []))
        if hashes:
            _check_extends(store, spec)
        return
    try:
        old = parse_text(text, source=str(store.spec_path))
    except FormatVersionError:
        raise  # a newer hptransfer's folder: say so, do not suggest replacing it
    except ConfigError as exc:
        raise ResultsError(f"{store.spec_path} is unusable ({exc}); use --new") from None
    if old.hash == spec.hash:
        return
    if extend:
        _check_extends(store, spec)
        return
    before, after = (
        {k: v for k, v in s.to_dict().items() if k not in UNHASHED_KEYS} for s in (old, spec)
    )
    raise ConfigError(_changed_message(store, spec, diff_keys(before, after)))


def _changed_message(store: ResultsStore, spec: SweepSpec, changed: list[str]) -> str:
    what = f" (changed: {', '.join(changed[:5])}{', ...' if len(changed) > 5 else ''})"
    grow = "--extend to keep them and train only new grid points, " if _is_grid(spec) else ""
    return (
        f"{store.directory} holds results of a different spec for sweep {spec.name!r}"
        f"{what if changed else ''}; re-run with {grow}--new to move them aside, "
        "or rename the sweep"
    )


def _is_grid(spec: SweepSpec) -> bool:
    return spec.search.algorithm == "grid"


def _check_extends(store: ResultsStore, spec: SweepSpec) -> None:
    """``--extend`` keeps every stored run, so the new grid must still plan each of them."""
    if not _is_grid(spec):
        raise ConfigError(
            f"--extend grows a grid sweep; {spec.name!r} searches with "
            f"{spec.search.algorithm}: use --new or rename the sweep"
        )
    trials = store.read_trials()
    planned = {trial_id(point_id(run), run.seed) for run in grid_runs(spec)}
    planned |= slice_variant_ids(spec, trials)
    stored = set(trials["trial_id"])
    if dropped := stored - planned:
        raise ConfigError(
            f"--extend keeps every stored run, but {len(dropped)} of the {len(stored)} in "
            f"{store.directory} are not in the new spec (a changed or removed value, not only "
            "added ones): use --new to move them aside, or rename the sweep"
        )


def move_aside(directory: Path, out: TextIO) -> None:
    with ResultsStore(directory).lock():  # refuse while another sweep writes there
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        aside = directory.with_name(f"{directory.name}.replaced-{stamp}")
        directory.rename(aside)
    print(f"moved the previous results to {aside}", file=out)


def _expected_runs(spec: SweepSpec, trials: pd.DataFrame) -> int:
    """Runs the sweep plans: its search's, plus its slices' (a slice run that repeats a
    searched run counts once; a slice not planned yet counts in full)."""
    if spec.search.algorithm == "grid":
        planned = {trial_id(point_id(run), run.seed) for run in grid_runs(spec)}
        searched = len(planned)
    else:
        planned, searched = set(), spec.search.num_samples * len(spec.seeds) * len(spec.cells)
    cut = spec.search.slice
    if cut is None:
        return searched
    extra = 0
    for cell in spec.cells:
        runs = slice_runs(spec, cell, trials)
        ids = {trial_id(point_id(run), run.seed) for run in runs}
        extra += len(ids - planned) if runs else len(cut.offsets()) * len(cut.seeds or spec.seeds)
    return searched + extra
