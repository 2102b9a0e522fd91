"""Benchmarks behind ``hptransfer bench``: each module has ``register(subparsers)``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from hptransfer.provenance import device_name


def load_average() -> float:
    """The machine's 1-minute load: CPU timings on a shared machine are only as good as this."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def bench_device(device: str) -> str:
    """The device a benchmark ran on, as every run records it
    (:func:`hptransfer.provenance.device_name`), with torch's thread count on a CPU."""
    import torch

    name = device_name(device)
    return name if name.startswith("cuda") else f"{name}, {torch.get_num_threads()} threads"


def positive_int(text: str) -> int:
    """An argparse type: a positive integer."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return int(text)


def positive_ints(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated positive integers (``1,2,4``)."""
    try:
        return tuple(positive_int(item.strip()) for item in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers; got {text!r}"
        ) from None


def add_out_folder(parser: argparse.ArgumentParser, *files: str) -> None:
    """``--out``: the folder every benchmark writes its named files into."""
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results/bench"),
        help=f"folder for {', '.join(files)} (default: results/bench)",
    )
