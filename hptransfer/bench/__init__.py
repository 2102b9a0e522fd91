"""Benchmarks behind ``hptransfer bench``: each module has ``register(subparsers)``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hptransfer.provenance import device_name

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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


def numbers(
    text: str,
    parse: Callable[[str], float],
    expected: str,
    valid: Callable[[float], bool],
    invalid: str,
) -> tuple[float, ...]:
    """An argparse type's reading of comma-separated numbers, each by ``parse``: an item it
    cannot read is an ArgumentTypeError saying what was ``expected``, a value not ``valid``
    one saying ``invalid``."""
    try:
        values = tuple(parse(item) for item in text.split(","))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
    if not all(valid(value) for value in values):
        raise argparse.ArgumentTypeError(f"{invalid}; got {text!r}")
    return values


def subplots(*args: Any, **kwargs: Any) -> tuple[Figure, Any]:
    """``plt.subplots`` on matplotlib's file-only Agg backend: a benchmark opens no window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_png(fig: Figure, path: Path) -> None:
    """Lay ``fig`` out, write it to ``path`` as a PNG (atomically) and close it."""
    import matplotlib.pyplot as plt

    from hptransfer.store import atomic_write

    fig.tight_layout()
    atomic_write(path, lambda handle: fig.savefig(handle, dpi=100, format="png"))
    plt.close(fig)
