"""``hptransfer fit [results/<sweep>]``: HP optima per group with intervals, drift → fit.json."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from hptransfer.store.folder import SPEC_FILE

if TYPE_CHECKING:
    from hptransfer.analysis.fit import Fit
    from hptransfer.store.location import Location


def results_folder(text: str) -> Location:
    """argparse type of a results folder: a local path, or an object storage URI (checked
    now: a missing bucket, missing credentials or unreachable storage is one line)."""
    from hptransfer.errors import ResultsError
    from hptransfer.store.folder import results_folder as checked

    try:
        return checked(text)
    except ResultsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The sweep folder argument shared by ``fit`` and ``plot``."""
    parser.add_argument(
        "sweep",
        nargs="?",
        type=results_folder,
        help="results/<sweep> folder or URI, e.g. s3://bucket/results/proxy (default: the "
        "latest sweep under --results)",
    )
    parser.add_argument(
        "--results",
        type=results_folder,
        default=Path("results"),
        help="results root: a folder, or object storage such as s3://bucket/results "
        "(default: results)",
    )


def sweep_folder(args: argparse.Namespace) -> Location:
    from hptransfer.analysis.results import find_sweep

    return find_sweep(args.sweep, args.results)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fit",
        help="fit each searched HP's optimum per group of a sweep; write fit.json",
        description="Per group and searched HP: average over seeds, fit a parabola in "
        "log2(HP) around the stable grid's best points, bootstrap over seeds for a 95% "
        "interval; flag edge, flat and cliff optima. A joint search (several HPs together) "
        "also gets its joint optimum, a quadratic in log2 space, which transfer uses. Prints "
        "the optima and their drift in octaves and writes results/<sweep>/fit.json.",
    )
    add_sweep_arguments(parser)
    parser.add_argument(
        "--metric", choices=("val_loss", "train_loss"), default="val_loss", help="loss to fit"
    )
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of seeds")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap random seed")
    parser.add_argument(
        "--at-step",
        type=int,
        help="fit the losses logged at this step (curves.parquet), ASHA-stopped trials "
        "included; default: completed trials at the full horizon",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hptransfer.analysis.fit import (
        FitSettings,
        budget_summary,
        drift_summary,
        fit_sweep,
        joint_summary,
        optima_summary,
        write_fit,
    )
    from hptransfer.analysis.horizon import SYMBOLS, TOKENS, line_axis

    sweep_dir = sweep_folder(args)
    settings = FitSettings(
        metric=args.metric, n_boot=args.n_boot, seed=args.seed, at_step=args.at_step
    )
    fit = fit_sweep(sweep_dir, settings)
    path = write_fit(fit, sweep_dir)
    print(
        f"sweep {fit.sweep}: {fit.metric} at {fit.horizon['steps']} steps; base shape "
        f"width {fit.base['width']}, density {fit.base['density']:g} ({fit.base['source']})"
    )
    print(optima_summary(fit).to_string(index=False))
    print(
        "\ndrift of the optimum (octaves = max - min of log2, of the fitted optima and of the "
        "grid arg-mins; flagged = optima not ok):"
    )
    print(drift_summary(fit).to_string(index=False))
    for param, joint in fit.joint.items():
        print(f"\njoint optimum of {param} at the base shape (loss {joint['loss']:.4f}):")
        print(joint_summary(joint).to_string(index=False))
    for param, chosen in fit.base_settings.items():
        if any(a in fit.group_axes for a in chosen):  # searched: say which one was kept
            kept = ", ".join(f"{a} {str(v).lower()}" for a, v in chosen.items())
            print(
                f"\nbase setting of {param} (the lower loss at the base shape; base HPs are its): "
                f"{kept}"
            )
    if fit.budget:
        axis = line_axis(fit.budget[0])
        over = "horizon" if axis == TOKENS else "batch size at fixed tokens"
        print(f"\nthe LR optimum over the {over}: {SYMBOLS[axis][1]} (budget rule fitted):")
        print(budget_summary(fit).to_string(index=False))
    _print_comparison(sweep_dir, fit)
    for note in fit_notes(fit, sweep_dir):
        print(f"\nnote: {note}")
    print(f"\nwrote {path}")
    return 0


def fit_notes(fit: Fit, sweep_dir: Path) -> list[str]:
    """What to do about edge optima and too few seeds."""
    optima, notes = fit.optima, []
    edges = int(optima["flag"].eq("edge").sum())
    if edges:
        spec = sweep_dir / SPEC_FILE
        how = (
            f"hptransfer sweep {spec} --auto-extend"
            if spec.is_file()
            else "hptransfer sweep <each source spec> --auto-extend, then merge again"
        )
        notes.append(f"{edges} optima sit on the grid's edge; grow the grid past them: {how}")
    few = int(optima["n_seeds"].lt(3).sum())
    if few:
        notes.append(
            f"{few} optima rest on fewer than 3 seeds: 2 seeds give only 3 distinct bootstrap "
            "resamples, so their intervals mean little; add seeds (spec seeds, then "
            "`hptransfer sweep SPEC --extend`)"
        )
    return notes


def _print_comparison(sweep_dir: Path, fit: Fit) -> None:
    """Parameterizations of one shape, each at its own best grid point, paired by seed."""
    from hptransfer.analysis.paired import best_point_comparison
    from hptransfer.analysis.results import read_trials

    table = best_point_comparison(read_trials(sweep_dir), fit.searched_hps, fit.metric)
    if table.empty:
        return
    for hp in fit.searched_hps:
        table[hp] = [f"2^{math.log2(v):.2f}" if v > 0 else f"{v:g}" for v in table[hp]]
    print(
        f"\neach parameterization at its best grid point ({fit.metric}, seed mean); "
        "difference to the reference paired by seed, 95% interval:"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
