"""``hptransfer coord-check``: is activation size flat in width and density?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hptransfer.config import (
    BLOCKS,
    BaseHPs,
    BaseShape,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    parse_fraction,
)
from hptransfer.param import PARAMETERIZATIONS, parameterization
from hptransfer.store.folder import COORD_CHECK_FILE


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def _fractions(text: str) -> list[float]:
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
    parser.add_argument("--block", default="gpt2", choices=BLOCKS, help="GPT block (gpt2)")
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
            block=args.block,
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
    from hptransfer.coord_check import coord_check_runs, measure, write_report

    params = args.parameterizations.split(",")
    for p in params:
        parameterization(p)
    widths = _ints(args.widths)
    runs = coord_check_runs(
        base_run(args),
        params,
        widths,
        _fractions(args.densities),
        _ints(args.seeds),
        density_width=max(widths),
    )
    records = measure(runs, _show_progress)
    print(file=sys.stderr)
    worst = write_report(records, args.out, density_width=max(widths))
    print("largest max/min activation ratio over layer groups and steps (1 = flat):")
    print(worst.round(2).to_string())
    print(f"wrote {args.out}/{COORD_CHECK_FILE} and coord_check_{{width,density}}.png")
    return 0


def _show_progress(i: int, n: int, run: RunConfig) -> None:
    print(
        f"\r[{i}/{n}] {run.parameterization} width {run.model.width} density "
        f"{run.model.density:g} seed {run.seed}   ",
        end="",
        file=sys.stderr,
        flush=True,
    )
