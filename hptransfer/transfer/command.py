"""A whole ``hptransfer transfer``: the command's options merged with the sweep's spec and
checked, the runs planned once, what will train described, then trained and reported."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from hptransfer import cost
from hptransfer.errors import ConfigError
from hptransfer.plan import format_table, forward_line, plan_header, plan_rows, shape_label
from hptransfer.runtime.cluster import Execution
from hptransfer.runtime.resources import TargetConfig
from hptransfer.sparse_evidence import sparse_lines
from hptransfer.store import Location
from hptransfer.store.folder import TARGETS_DIR, TRANSFER_CURVES_FILE, TRANSFER_FILE
from hptransfer.transfer.report import gain_rows, regret_report
from hptransfer.transfer.runs import (
    Request,
    TransferRuns,
    budget_notes,
    check_data,
    depth_note,
    run_transfer,
    target_runs,
)
from hptransfer.transfer.source import (
    Source,
    default_parameterization,
    flag_warnings,
    load_source,
    source_summary,
)

# The Ray Train settings a command line may set over the spec's target: section.
TARGET_KEYS = ("workers", "strategy", "precision", "micro_batch", "checkpoint_every")


@dataclass(frozen=True)
class TransferOptions:
    """A transfer as the command line asks for it; the sweep's spec fills in the rest.

    ``request.parameterization`` empty: the fit's default. ``cpus``/``gpus``: per run (per
    worker on Ray Train), over the spec's resources; ``address``: over the spec's Ray.
    ``target``: Ray Train settings (:data:`TARGET_KEYS`) over the spec's ``target:``.
    """

    request: Request
    source: Location | None = None  # the sweep folder or its fit.json; None: the latest fit
    results: Location = Path("results")
    cpus: int | None = None
    gpus: float | None = None
    address: str | None = None
    target: dict[str, Any] = field(default_factory=dict)
    restart: bool = False
    dry_run: bool = False
    verbose: bool = False
    log: Sequence[str] = ()  # trackers (--log) besides the spec's log: key


@dataclass(frozen=True)
class Outcome:
    """What a transfer trained: the stored row of every run (with its ``transferred_lr``),
    where they are, and the report to print."""

    rows: pd.DataFrame
    destination: Location
    report: str

    @property
    def failed(self) -> int:
        return int(self.rows["status"].eq("error").sum())

    @property
    def failures(self) -> str:
        """What failed and what to do, in one line."""
        return (
            f"{self.failed} run(s) failed (see the error column of {self.destination}); "
            "re-run the same command to retry them"
        )


def run(options: TransferOptions, out: TextIO) -> Outcome | None:
    """Say on ``out`` where the base HPs come from, the warnings and notes, each target's plan
    and cost estimate and the memory check; then (unless a dry run, which returns None) train
    the runs not stored yet, as many at once as fit in memory."""
    source = load_source(options.source, options.results)
    request = options.request
    if not request.parameterization:
        primary = default_parameterization(source.fit)
        request = dataclasses.replace(request, parameterization=primary)
    runs = target_runs(source, request)
    execution = _execution(options, source)
    target = _target(options, source, runs, execution)
    print(source_summary(source, request.parameterization), file=out)
    for line in (
        *flag_warnings(source.fit, request.parameterization),
        *_notes(source, request, runs),
    ):
        print(line, file=out)
    threads = execution.resources.cpus_per_trial
    estimates = _plans(runs.transferred(), threads, target, out)
    regret_runs = len(runs) if request.regret else 0
    concurrent, memory = cost.memory_check(estimates, execution, regret_runs=regret_runs)
    print(memory, file=out)
    destination = source.sweep_dir / TRANSFER_FILE
    if options.dry_run:
        print(
            f"dry run: nothing trained; {len(runs)} run(s) would be stored in {destination}",
            file=out,
        )
        return None
    resources = dataclasses.replace(execution.resources, max_concurrent=concurrent)
    execution = dataclasses.replace(execution, resources=resources)
    rows = run_transfer(source, runs, execution, target=target, restart=options.restart)
    rows = rows.assign(transferred_lr=list(runs.centres))
    at_lr = rows[rows["lr"].eq(rows["transferred_lr"])]
    report = [
        format_table(gain_rows(at_lr, request.parameterization, request.baselines)),
        f"stored in {destination} (curves: {TRANSFER_CURVES_FILE})",
    ]
    if request.regret:
        report.append(regret_report(rows, source, request.budget_rule))
    return Outcome(rows, destination, "\n".join(report))


def _execution(options: TransferOptions, source: Source) -> Execution:
    """The spec's resources and Ray with the options' CPUs, GPUs and address over them."""
    resources = source.spec.resources
    for flag, name, minimum in (("cpus", "cpus_per_trial", 1), ("gpus", "gpus_per_trial", 0)):
        value = getattr(options, flag)
        if value is not None and value < minimum:
            raise ConfigError(f"--{flag} must be >= {minimum}; got {value}")
        if value is not None:
            resources = dataclasses.replace(resources, **{name: value})
    address = options.address or source.spec.ray.address
    from hptransfer.trackers import chosen

    trackers = chosen(source.spec.log, options.log)
    return Execution(
        resources=resources, address=address, verbose=options.verbose, trackers=trackers
    )


def _target(
    options: TransferOptions, source: Source, runs: TransferRuns, execution: Execution
) -> TargetConfig | None:
    """How targets train on Ray Train: the spec's target: section with the options over it,
    checked against the batch, the machine and (unless a dry run) the writability of the
    sweep folder's targets/, on a disk or in object storage; None (the sweep's Ray Tune
    path) when neither is given."""
    from hptransfer.distributed.run import check_resources, check_writable
    from hptransfer.distributed.runs import check_optimizer

    given = {k: v for k, v in options.target.items() if v is not None}
    if source.spec.target is None and not given:
        if options.restart:
            raise ConfigError("--restart applies to targets on Ray Train (give --workers)")
        return None
    base = dataclasses.asdict(source.spec.target) if source.spec.target else {}
    for flag, key in (("cpus", "cpus_per_worker"), ("gpus", "gpus_per_worker")):
        if getattr(options, flag) is not None:
            given[key] = getattr(options, flag)  # per run = per worker on Ray Train
    target = TargetConfig.from_dict({**base, **given})
    check_resources(target, execution)
    check_optimizer(target, runs)
    for batch in dict.fromkeys(run.data.batch_size for run in runs):
        target.micro_batches(batch)
    if not options.dry_run:
        check_writable(source.sweep_dir / TARGETS_DIR)
    return target


def _notes(source: Source, request: Request, runs: TransferRuns) -> list[str]:
    notes = [
        check_data(source.fit, runs[0].data, request.allow_data_change),
        *budget_notes(source, request, runs),
        *(depth_note(source, run) for run in runs),
    ]
    return list(dict.fromkeys(note for note in notes if note))


def _plans(
    runs: list, threads: int, target: TargetConfig | None, out: TextIO
) -> dict[str, cost.Estimate]:
    """Each target's plan per parameterization, then its estimate; the estimates by target."""
    from hptransfer.distributed.cost import target_estimate, target_label

    flops_per_s = cost.measured_flops_per_s(target.cpus_per_worker if target else threads)
    estimates: dict[str, cost.Estimate] = {}
    first_seed = [run for run in runs if run.seed == runs[0].seed]
    for label, group in itertools.groupby(first_seed, key=shape_label):
        group = list(group)
        for run in group:
            lines = (plan_header(run), forward_line(run), *sparse_lines(run))
            print("\n" + "\n".join(lines) + "\n" + format_table(plan_rows(run)), file=out)
        estimates[label] = cost.estimate(group[0], flops_per_s)
        how = ""
        if target is not None:
            estimates[label] = target_estimate(estimates[label], group[0], target)
            how = f" on Ray Train, {target_label(target)}; memory of all workers together"
        print(f"\n{label}: estimate per run (not a measurement{how})", file=out)
        print(estimates[label].summary(group[0].train.steps), file=out)
    return estimates
