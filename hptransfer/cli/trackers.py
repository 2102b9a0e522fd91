"""``--log TRACKER`` of ``sweep`` and ``transfer``: the experiment trackers to follow runs in."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from hptransfer.trackers import TRACKERS, chosen

if TYPE_CHECKING:
    from hptransfer.sweep import SweepSpec
    from hptransfer.trackers import Tracker


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


def chosen_trackers(args: argparse.Namespace, spec: SweepSpec) -> tuple[Tracker, ...]:
    """The spec's trackers and ``--log``'s, each checked to be installed."""
    return chosen(spec.log, args.log)
