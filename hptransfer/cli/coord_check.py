"""``hptransfer coord-check``: is activation size flat in width and density?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from hptransfer.analysis.coord_plot import activation_table, plot_coord_check, spread
from hptransfer.config import BaseHPs, BaseShape, DataConfig, ModelConfig, RunConfig, TrainConfig
from hptransfer.param import PARAMETERIZATIONS, parameterization


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def _fractions(text: str) -> list[float]:
    from hptransfer.config import parse_fraction

    return [parse_fraction(v) for v in text.split(",")]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "coord-check",
        help="train a few steps at several widths/densities; record activation sizes",
        description="Width sweep at density 1 and density sweep at the base width; writes "
        "long-format Parquet and figures (flat lines = a correct parameterization).",
    )
    parser.add_argument("-p", "--parameterizations", default=",".join(PARAMETERIZATIONS))
    parser.add_argument(
        "--widths",
        default="256,512,1024",
        help="first: the base width; the density sweep runs at the largest",
    )
    parser.add_argument("--densities", default="1,1/2,1/4,1/8,1/16")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--lr", type=float, default=2.0**-9, help="base Adam LR η")
    parser.add_argument("--kind", default="gpt", choices=("gpt", "mlp"))
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--corpus", default="shakespeare")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument(
        "--readout-zero-init",
        action="store_true",
        help="start the readout weight at 0 (μP practice): the logits then start flat in width",
    )
    parser.add_argument("--out", type=Path, default=Path("results/coord_check"))
    parser.set_defaults(func=run)


def base_run(args: argparse.Namespace) -> RunConfig:
    width = _ints(args.widths)[0]
    return RunConfig(
        model=ModelConfig(
            kind=args.kind,
            width=width,
            depth=args.depth,
            heads=args.heads,
            context=args.seq_len,
            readout_zero_init=args.readout_zero_init,
        ),
        data=DataConfig(corpus=args.corpus, batch_size=args.batch_size, seq_len=args.seq_len),
        train=TrainConfig(steps=args.steps),
        hps=BaseHPs(lr=args.lr),
        base=BaseShape(width=width),
    )


def run(args: argparse.Namespace) -> int:
    from hptransfer.coord_check import check_run, coord_check_runs
    from hptransfer.store import write_frame
    from hptransfer.store.folder import COORD_CHECK_FILE

    params = args.parameterizations.split(",")
    for p in params:
        parameterization(p)
    base = base_run(args)
    widths = _ints(args.widths)
    runs = coord_check_runs(
        base,
        params,
        widths,
        _fractions(args.densities),
        _ints(args.seeds),
        density_width=max(widths),
    )
    rows: list[dict] = []
    for i, r in enumerate(runs, 1):
        print(
            f"\r[{i}/{len(runs)}] {r.parameterization} width {r.model.width} density "
            f"{r.model.density:g} seed {r.seed}   ",
            end="",
            file=sys.stderr,
            flush=True,
        )
        rows.extend(check_run(r))
    print(file=sys.stderr)
    records = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    write_frame(args.out / COORD_CHECK_FILE, records)
    table = activation_table(records)
    slices = {"width": {"density": 1.0}, "density": {"width": max(widths)}}
    for axis, fixed in slices.items():
        plot_coord_check(table, axis, fixed, args.out / f"coord_check_{axis}.png")
    summary = pd.concat([spread(table, axis, fixed) for axis, fixed in slices.items()])
    worst = summary.groupby(["parameterization", "axis"])["spread"].max().unstack()
    print("largest max/min activation ratio over layer groups and steps (1 = flat):")
    print(worst.round(2).to_string())
    print(f"wrote {args.out}/{COORD_CHECK_FILE} and coord_check_{{width,density}}.png")
    return 0
