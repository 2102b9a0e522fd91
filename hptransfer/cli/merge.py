"""``hptransfer merge SWEEP... --into STUDY``: one study folder from several sweeps."""

from __future__ import annotations

import argparse

from hptransfer.cli.options import results_folder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "merge",
        help="merge several sweeps' results into one study folder for fit and plot",
        description="Write the union of the sweeps' trials.parquet and curves.parquet (a run "
        "stored twice is taken once) into a study folder, with sources.json naming them. "
        "Re-running replaces the earlier merge. The runs must share base shape, corpus, "
        "optimizer and steps.",
    )
    parser.add_argument(
        "sweeps", nargs="+", type=results_folder, help="results/<sweep> folders (or URIs)"
    )
    parser.add_argument(
        "--into",
        type=results_folder,
        required=True,
        help="the study folder, e.g. results/lr_vs_density or s3://bucket/results/study",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="COLUMN=V,...",
        help="keep only runs with these values (repeatable; columns parameterization, width, "
        "depth, density), e.g. --only density=1,1/8, or joint values of several columns, e.g. "
        "--only width:density=32:1,64:1/4,128:1/16",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hptransfer.store.merge import merge_sweeps, parse_selection

    outcome = merge_sweeps(args.sweeps, args.into, only=parse_selection(args.only))
    parts = ", ".join(f"{runs} from {source}" for source, runs in outcome.taken.items())
    print(f"merged {outcome.runs} runs into {outcome.directory} ({parts})")
    return 0
