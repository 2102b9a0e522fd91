"""Arguments several subcommands share: results folders, declared once."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hptransfer.store.location import Location

RESULTS_HELP = (
    "results root: a folder, or object storage such as s3://bucket/results (default: results)"
)


def results_folder(text: str) -> Location:
    """argparse type of a results folder: a local path, or an object storage URI (checked
    now: a missing bucket, missing credentials or unreachable storage is one line)."""
    from hptransfer.errors import ResultsError
    from hptransfer.store.folder import results_folder as checked

    try:
        return checked(text)
    except ResultsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def integers(flag: str, text: str) -> tuple[int, ...]:
    """A comma-separated list of integers (``0,1,2``), or a one-line error naming ``flag``."""
    from hptransfer.errors import ConfigError

    try:
        return tuple(int(item) for item in text.split(",") if item.strip())
    except ValueError:
        raise ConfigError(f"{flag} must be comma-separated integers; got {text!r}") from None


def fields_from(args: argparse.Namespace, cls: type, **given: Any) -> dict[str, Any]:
    """The keyword arguments of dataclass ``cls``: ``given``, and every other field that a
    flag of the same name sets."""
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.name in args}
    return {**flags, **given}


def add_results_option(parser: argparse.ArgumentParser) -> None:
    """``--results``: the results root (a folder or an object storage URI)."""
    parser.add_argument(
        "--results", type=results_folder, default=Path("results"), help=RESULTS_HELP
    )


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The sweep folder argument shared by ``fit`` and ``plot``, and ``--results``."""
    parser.add_argument(
        "sweep",
        nargs="?",
        type=results_folder,
        help="results/<sweep> folder or URI, e.g. s3://bucket/results/proxy (default: the "
        "latest sweep under --results)",
    )
    add_results_option(parser)
