"""``--log TRACKER`` of ``sweep`` and ``transfer``: the experiment trackers to follow runs in."""

from __future__ import annotations

import argparse

from hptransfer.trackers import TRACKERS


def add_log_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log",
        action="append",
        default=[],
        choices=tuple(TRACKERS),
        metavar="TRACKER",
        help="also log every run to an experiment tracker: wandb, mlflow or tensorboard "
        "(repeatable; with the spec's log: key and its settings; docs/trackers.md)",
    )
