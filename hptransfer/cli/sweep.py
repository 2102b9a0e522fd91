"""``hptransfer sweep SPEC.yaml``: run or resume a proxy HP sweep on Ray Tune."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from hptransfer.cli.options import add_results_option, fields_from, results_folder
from hptransfer.cli.trackers import add_log_flag

if TYPE_CHECKING:
    import pandas as pd


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
    add_results_option(parser)
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
    parser.add_argument(
        "--reuse",
        action="append",
        type=results_folder,
        default=[],
        metavar="FOLDER",
        help="another sweep's folder (repeatable): a run whose model is stored there is "
        "copied from it (same_as), not trained",
    )
    parser.add_argument(
        "--auto-extend",
        action=argparse.BooleanOptionalAction,
        help="while a fitted optimum sits on the edge of the grid, add a step past it and "
        "train the new runs, saying what each round added (implies --extend); rounds: the "
        "spec's search.auto_extend, else 4. Default: on where the spec sets "
        "search.auto_extend (sweeps/proxy.yaml does); --no-auto-extend turns it off",
    )
    add_log_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hptransfer.store.folder import CURVES_FILE, TRIALS_FILE
    from hptransfer.sweep.command import SweepInterrupted, SweepOptions, run_command

    options = SweepOptions(**fields_from(args, SweepOptions))
    try:
        outcome = run_command(options, _grid_optima)
    except SweepInterrupted as exc:
        print(
            f"hptransfer: interrupted; the finished runs are stored in {exc.folder}: "
            "re-run the same command to resume",
            file=sys.stderr,
        )
        return 130
    where = outcome.directory / TRIALS_FILE
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
    print(
        f"results: {where} and {CURVES_FILE} ({outcome.finished} runs, {outcome.trained} trained)"
    )
    return 0


def _grid_optima(trials: pd.DataFrame) -> pd.DataFrame:
    """The fitted optima with their grid arg-mins (one bootstrap draw: no intervals needed)."""
    from hptransfer.analysis.fit import FitSettings, fit_optima

    return fit_optima(trials, FitSettings(n_boot=1))
