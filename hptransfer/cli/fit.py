"""``hptransfer fit [results/<sweep>]``: HP optima per group with intervals, drift → fit.json."""

from __future__ import annotations

import argparse

from hptransfer.cli.options import add_sweep_arguments


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
    from hptransfer.analysis.fit import FitSettings
    from hptransfer.analysis.fit.command import fit_command

    settings = FitSettings(
        metric=args.metric, n_boot=args.n_boot, seed=args.seed, at_step=args.at_step
    )
    fitted = fit_command(args.sweep, args.results, settings)
    print(fitted.report)
    print(f"\nwrote {fitted.path}")
    return 0
