"""``hptransfer bench <what>``: benchmarks that print figures and write them to results/bench/."""

from __future__ import annotations

import argparse
import importlib

# Benchmark modules, each with ``register(subparsers)``.
BENCHMARKS = (
    "hptransfer.bench.kernels",
    "hptransfer.bench.train",
    "hptransfer.bench.sweep",
    "hptransfer.bench.many",
    "hptransfer.bench.target",
    "hptransfer.bench.prepare",
    "hptransfer.bench.scale",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark (figures to results/bench/)")
    inner = parser.add_subparsers(dest="benchmark", required=True, parser_class=type(parser))
    for module in BENCHMARKS:
        importlib.import_module(module).register(inner)
