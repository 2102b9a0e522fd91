"""``hptransfer plot [results/<sweep>]``: the sweep's figures as PNG and SVG under plots/."""

from __future__ import annotations

import argparse

from hptransfer.cli.options import add_sweep_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="draw HP stability, optimum vs density/width and training curves of a sweep",
        description="Figures under results/<sweep>/plots/ (PNG and SVG), from the sweep's "
        "Parquet files and its fit.json (fitted in memory when missing or stale).",
    )
    add_sweep_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hptransfer.analysis.plots import plot_command

    plotted = plot_command(args.sweep, args.results)
    if not plotted.saved_fit:
        print(
            "note: fit.json is missing or older than trials.parquet; fitted in memory "
            "(run `hptransfer fit` to save it)"
        )
    for path in plotted.paths:
        print(path)
    return 0
