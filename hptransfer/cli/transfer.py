"""``hptransfer transfer --to width=4096,density=0.125``: train a target with the fitted HPs."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from hptransfer.cli.options import add_results_option, fields_from, integers, results_folder
from hptransfer.cli.trackers import add_log_flag
from hptransfer.param.rules import BUDGET_RULES, COMPLETEDP

if TYPE_CHECKING:
    from hptransfer.transfer.command import TransferOptions


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
    add_results_option(parser)
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
    add_log_flag(parser)
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
    from hptransfer.transfer.command import run as transfer

    outcome = transfer(_options(args), sys.stdout)
    if outcome is None:  # a dry run
        return 0
    print(outcome.report)
    if outcome.failed:
        print(f"hptransfer: {outcome.failures}", file=sys.stderr)
    return 1 if outcome.failed else 0


def _options(args: argparse.Namespace) -> TransferOptions:
    from hptransfer.cli.targets import parse_targets
    from hptransfer.transfer.command import TARGET_KEYS, TransferOptions
    from hptransfer.transfer.runs import Request

    request = Request(
        **fields_from(
            args,
            Request,
            targets=parse_targets(args.to),
            parameterization=args.parameterization or "",
            compare=tuple(name.strip() for name in args.compare.split(",") if name.strip()),
            seeds=integers("--seeds", args.seeds),
        )
    )
    target = {key: getattr(args, key) for key in TARGET_KEYS}
    return TransferOptions(**fields_from(args, TransferOptions, request=request, target=target))
