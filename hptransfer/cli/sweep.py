"""``hptransfer sweep SPEC.yaml``: run or resume a proxy HP sweep on Ray Tune."""

from __future__ import annotations

import argparse
import dataclasses
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="run or resume a proxy HP sweep (results/<name>/trials.parquet, curves.parquet)",
        description="Run a sweep spec on Ray Tune; re-running the same command resumes it.",
    )
    parser.add_argument("spec", help="sweep YAML, e.g. sweeps/proxy.yaml")
    parser.add_argument(
        "--address",
        help="attach to a running Ray cluster (host:port); default: the spec's ray.address, "
        "$RAY_ADDRESS, else an embedded local Ray",
    )
    parser.add_argument("--results", default="results", help="results root (default: results)")
    parser.add_argument(
        "--max-concurrent", type=int, help="trials at a time (default: CPUs / cpus_per_trial)"
    )
    parser.add_argument(
        "--new",
        action="store_true",
        help="start fresh: move this sweep's existing results to <name>.replaced-<time>/",
    )
    parser.add_argument(
        "--extend",
        action="store_true",
        help="the grid grew (more values, densities, widths, parameterizations or seeds): "
        "keep the stored runs and train only the new ones",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hptransfer.sweep import Execution, load_spec, run_sweep

    spec = load_spec(args.spec)
    resources = spec.resources
    if args.max_concurrent is not None:
        resources = dataclasses.replace(resources, max_concurrent=args.max_concurrent)
    execution = Execution(
        resources=resources, address=args.address or spec.ray.address, verbose=args.verbose
    )
    try:
        outcome = run_sweep(
            spec, args.results, execution=execution, new=args.new, extend=args.extend
        )
    except KeyboardInterrupt:
        print(
            f"hptransfer: interrupted; the finished runs are stored in {args.results}/"
            f"{spec.name}: re-run the same command to resume",
            file=sys.stderr,
        )
        return 130
    where = outcome.directory / "trials.parquet"
    if outcome.failed:
        print(
            f"hptransfer: {outcome.failed} runs failed (see the error column of {where}); "
            "re-run the same command to retry them",
            file=sys.stderr,
        )
        return 1
    if outcome.finished < outcome.expected:
        print(
            f"hptransfer: sweep incomplete ({outcome.finished}/{outcome.expected} runs stored); "
            "re-run the same command to resume",
            file=sys.stderr,
        )
        return 1
    print(f"results: {where} and curves.parquet ({outcome.finished} runs)")
    return 0
