"""``hptransfer transfer --to width=4096,density=0.125``: train a target with the fitted HPs."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hptransfer.cli.fit import results_folder
from hptransfer.errors import ConfigError
from hptransfer.param.rules import BUDGET_RULES, COMPLETEDP
from hptransfer.plan import format_table, forward_line, plan_header, plan_rows, shape_label
from hptransfer.sparse_evidence import sparse_lines
from hptransfer.store.folder import TARGETS_DIR, TRANSFER_CURVES_FILE, TRANSFER_FILE

if TYPE_CHECKING:
    import pandas as pd

    from hptransfer.config import RunConfig
    from hptransfer.cost import Estimate
    from hptransfer.runtime.cluster import Execution
    from hptransfer.runtime.resources import TargetConfig
    from hptransfer.transfer import Request, Source


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "transfer",
        help="train a wide/sparse target with the base HPs fitted on the proxy sweep",
        description="Compute the target's per-parameter HPs from fit.json's base HPs, print the "
        "plan and a cost estimate, then train the target (and --compare baselines) on Ray into "
        "results/<sweep>/transfer.parquet. A target trains for its own budget (--to ...,"
        "tokens=N or steps=N, batch=B; default: the proxy's), the base HPs moved to it by "
        "--budget-rule; warmup keeps its fraction of the run.",
    )
    parser.add_argument(
        "--to",
        required=True,
        help="target(s): key=value,... with keys width, density, depth, heads and the budget "
        "keys tokens (or steps) and batch; several separated by ';', e.g. "
        "'width=4096,density=0.125,tokens=2000000000,batch=64;width=1024,density=0.5'",
    )
    parser.add_argument(
        "--from",
        dest="source",
        type=results_folder,
        help="results/<sweep> folder or its fit.json (default: the latest fit under --results)",
    )
    parser.add_argument(
        "--results",
        type=results_folder,
        default=Path("results"),
        help="results root (a folder or an object storage URI)",
    )
    parser.add_argument(
        "-p", "--parameterization", help="the one transferred (default: supar if fitted)"
    )
    parser.add_argument(
        "--compare", default="", help="baselines trained with the same base HPs, e.g. sp,mup"
    )
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    parser.add_argument(
        "--steps", type=int, help="steps of every target whose --to names no tokens or steps"
    )
    parser.add_argument(
        "--batch-size", type=int, help="batch of every target whose --to names no batch"
    )
    parser.add_argument(
        "--budget-rule",
        choices=tuple(BUDGET_RULES),
        default=COMPLETEDP.name,
        help="how the base HPs move to a target's budget: completedp (default; Complete(d)P's "
        "closed form: η and weight decay × √(m_B/m_D), ε × √(m_D/m_B), 1 − β × m_B/m_D), "
        "fitted (η from fit.json's η* line: of a sweep over >= 3 horizons for other tokens, "
        "over >= 3 batch sizes for another batch), none",
    )
    parser.add_argument(
        "--cpus",
        type=int,
        help="CPUs (torch threads) per run, or per worker on Ray Train; default: spec",
    )
    parser.add_argument(
        "--gpus", type=float, help="GPUs per run, or per worker on Ray Train (default: the spec's)"
    )
    parser.add_argument("--address", help="Ray cluster host:port (default: the spec's ray)")
    parser.add_argument(
        "--regret",
        action="store_true",
        help="also train each target at η × 2^(-1, -0.5, 0.5, 1) (same seeds, every "
        "parameterization) and report the transfer regret: the transferred loss against the "
        "best of that grid, into results/<sweep>/regret.parquet",
    )
    parser.add_argument(
        "--data",
        help="token folder the targets train on (default: the proxy's data); it must be "
        "tokenized like the proxy's (fit.json records how)",
    )
    parser.add_argument(
        "--allow-data-change",
        action="store_true",
        help="train even if the targets' data are tokenized otherwise than the proxy's",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan and the estimate; train nothing"
    )
    _register_target(parser)
    parser.set_defaults(func=run)


def _register_target(parser: argparse.ArgumentParser) -> None:
    from hptransfer.runtime.resources import PRECISIONS, STRATEGIES

    group = parser.add_argument_group(
        "targets on Ray Train (with any of these, or the spec's target: section): "
        "data-parallel, checkpointed, resumed by re-running the same command"
    )
    group.add_argument("--workers", type=int, help="Ray Train workers per target (default 1)")
    group.add_argument("--strategy", choices=STRATEGIES, help="ddp (default) or fsdp (FSDP2)")
    group.add_argument(
        "--precision", choices=PRECISIONS, help="auto (default: bf16 on CUDA, fp32 on CPU)"
    )
    group.add_argument(
        "--micro-batch", type=int, help="rows per forward/backward (gradient accumulation)"
    )
    group.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (100)")
    group.add_argument(
        "--restart",
        action="store_true",
        help="train the targets again from step 0 (the previous target folders are moved aside)",
    )


def run(args: argparse.Namespace) -> int:
    from hptransfer import cost
    from hptransfer import transfer as tr

    source = tr.load_source(args.source, args.results)
    request = _request(args, source)
    runs = tr.target_runs(source, request)
    execution = _execution(args, source)
    target = _target(args, source, runs, execution)
    print(tr.source_summary(source, request.parameterization))
    warnings = tr.flag_warnings(source.fit, request.parameterization)
    for line in (*warnings, *_notes(source, request, runs)):
        print(line)
    estimates = _print_plans(
        tr.transferred(runs, source, request), execution.resources.cpus_per_trial, target
    )
    concurrent, memory = cost.memory_check(
        estimates, execution, regret_runs=len(runs) if request.regret else 0
    )
    print(memory)
    destination = source.sweep_dir / TRANSFER_FILE
    if args.dry_run:
        print(f"dry run: nothing trained; {len(runs)} run(s) would be stored in {destination}")
        return 0
    resources = dataclasses.replace(execution.resources, max_concurrent=concurrent)
    execution = dataclasses.replace(execution, resources=resources)
    rows = tr.run_transfer(source, runs, execution, target=target, restart=args.restart)
    rows = rows.assign(transferred_lr=tr.transferred_lrs(runs, source, request))
    at_lr = rows[rows["lr"].eq(rows["transferred_lr"])]
    print(format_table(tr.gain_rows(at_lr, request.parameterization, request.baselines)))
    print(f"stored in {destination} (curves: {TRANSFER_CURVES_FILE})")
    if request.regret:
        _report_regret(rows, source, request.budget_rule)
    return _failures(rows, destination)


def _report_regret(rows: pd.DataFrame, source: Source, budget_rule: str) -> None:
    """The regret of each target against the grid around its own transferred η; a target
    trained for another budget than the proxy's records the rule that moved its HPs."""
    import pandas as pd

    from hptransfer.analysis.regret import regret_summary, regret_table, write_regret

    proxy = source.proxy_horizon
    at_proxy = rows["max_steps"].eq(proxy.steps) & rows["tokens"].eq(proxy.tokens)
    rows = rows.assign(budget_rule=at_proxy.map({True: "", False: budget_rule}))
    parts = rows.groupby(["transferred_lr", "budget_rule"], sort=False)
    table = pd.concat(
        [regret_table(part, lr, source.fit.metric, rule) for (lr, rule), part in parts]
    )
    print("\ntransfer regret (transferred η against the best of η × 2^(-1 … 1) at the target):")
    print(regret_summary(table).to_string(index=False))
    print(f"stored in {write_regret(table, source.sweep_dir)}")


TARGET_FLAGS = ("workers", "strategy", "precision", "micro_batch", "checkpoint_every")


def _target(
    args: argparse.Namespace, source: Source, runs: list[RunConfig], execution: Execution
) -> TargetConfig | None:
    """How targets train on Ray Train: the spec's target: section with the flags over it,
    checked against the batch, the machine and (unless a dry run) the writability of the
    sweep folder's targets/, on a disk or in object storage; None (the sweep's Ray Tune
    path) when neither is given."""
    from hptransfer.runtime.resources import TargetConfig
    from hptransfer.target.run import check_resources, check_writable

    flags = {name: getattr(args, name) for name in TARGET_FLAGS if getattr(args, name) is not None}
    if source.spec.target is None and not flags:
        if args.restart:
            raise ConfigError("--restart applies to targets on Ray Train (give --workers)")
        return None
    base = dataclasses.asdict(source.spec.target) if source.spec.target else {}
    for flag, key in (("cpus", "cpus_per_worker"), ("gpus", "gpus_per_worker")):
        if getattr(args, flag) is not None:
            flags[key] = getattr(args, flag)  # per run = per worker on Ray Train
    target = TargetConfig.from_dict({**base, **flags})
    check_resources(target, execution)
    for batch in dict.fromkeys(run.data.batch_size for run in runs):
        target.micro_batches(batch)
    if not args.dry_run:
        check_writable(source.sweep_dir / TARGETS_DIR)
    return target


def _request(args: argparse.Namespace, source: Source) -> Request:
    from hptransfer.cli.targets import parse_targets
    from hptransfer.transfer import Request, default_parameterization

    primary = args.parameterization or default_parameterization(source.fit)
    compare = tuple(name.strip() for name in args.compare.split(",") if name.strip())
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers; got {args.seeds!r}") from None
    return Request(
        targets=parse_targets(args.to),
        parameterization=primary,
        compare=compare,
        seeds=seeds,
        steps=args.steps,
        batch_size=args.batch_size,
        regret=args.regret,
        data=args.data,
        allow_data_change=args.allow_data_change,
        budget_rule=args.budget_rule,
    )


def _execution(args: argparse.Namespace, source: Source) -> Execution:
    from hptransfer.runtime.cluster import Execution

    resources = source.spec.resources
    for flag, field, minimum in (("cpus", "cpus_per_trial", 1), ("gpus", "gpus_per_trial", 0)):
        value = getattr(args, flag)
        if value is not None and value < minimum:
            raise ConfigError(f"--{flag} must be >= {minimum}; got {value}")
        if value is not None:
            resources = dataclasses.replace(resources, **{field: value})
    address = args.address or source.spec.ray.address
    return Execution(resources=resources, address=address, verbose=args.verbose)


def _notes(source: Source, request: Request, runs: list[RunConfig]) -> list[str]:
    from hptransfer.transfer import budget_notes, check_data, depth_note

    notes = [
        check_data(source.fit, runs[0].data, request.allow_data_change),
        *budget_notes(source, request, runs),
        *(depth_note(source, run) for run in runs),
    ]
    return list(dict.fromkeys(note for note in notes if note))


def _print_plans(
    runs: list[RunConfig], threads: int, target: TargetConfig | None
) -> dict[str, Estimate]:
    """Each target's plan per parameterization, then its estimate; the estimates by target."""
    from hptransfer import cost
    from hptransfer.target.cost import target_estimate, target_label

    flops_per_s = cost.measured_flops_per_s(target.cpus_per_worker if target else threads)
    estimates: dict[str, Estimate] = {}
    first_seed = [run for run in runs if run.seed == runs[0].seed]
    for label, group in itertools.groupby(first_seed, key=shape_label):
        group = list(group)
        for run in group:
            lines = (plan_header(run), forward_line(run), *sparse_lines(run))
            print("\n" + "\n".join(lines) + "\n" + format_table(plan_rows(run)))
        estimates[label] = cost.estimate(group[0], flops_per_s)
        how = ""
        if target is not None:
            estimates[label] = target_estimate(estimates[label], group[0], target)
            how = f" on Ray Train, {target_label(target)}; memory of all workers together"
        print(f"\n{label}: estimate per run (not a measurement{how})")
        print(estimates[label].summary(group[0].train.steps))
    return estimates


def _failures(rows: pd.DataFrame, destination: Path) -> int:
    failed = rows[rows["status"].eq("error")]
    if failed.empty:
        return 0
    print(
        f"hptransfer: {len(failed)} run(s) failed (see the error column of {destination}); "
        "re-run the same command to retry them",
        file=sys.stderr,
    )
    return 1
