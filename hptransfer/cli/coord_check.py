"""``hptransfer coord-check``: is activation size flat in width, density and depth?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hptransfer.config import (
    BLOCKS,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    parse_fraction,
)
from hptransfer.errors import ConfigError
from hptransfer.param import BaseHPs, BaseShape
from hptransfer.param.base import check_depth
from hptransfer.param.rules import PAPERS
from hptransfer.store.folder import COORD_CHECK_FILE


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def _fractions(text: str) -> list[float]:
    return [parse_fraction(v) for v in text.split(",")]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "coord-check",
        help="train a few steps at several widths/densities/depths; record activation sizes",
        description="Width sweep at density 1 and density sweep at the largest width; with "
        "--depths, a depth sweep at the base width; writes long-format Parquet and figures "
        "(flat lines = a correct parameterization).",
    )
    parser.add_argument("-p", "--parameterizations", default=",".join(PAPERS))
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
    parser.add_argument(
        "--build", help="your model instead: package.module:function (see docs/own-model.md)"
    )
    parser.add_argument("--block", default="gpt2", choices=BLOCKS, help="GPT block (gpt2)")
    parser.add_argument("--depth", type=int, default=2, help="residual blocks (hidden layers)")
    parser.add_argument(
        "--depths",
        help="a depth sweep at the base width, e.g. 2,4,8,16; its first is the base depth "
        "and the depth of the width and density sweeps (replaces --depth)",
    )
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


def base_run(args: argparse.Namespace, depth: int) -> RunConfig:
    width = _ints(args.widths)[0]
    return RunConfig(
        model=ModelConfig(
            kind="python" if args.build else args.kind,
            build=args.build,
            block=args.block,
            width=width,
            depth=depth,
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
    from hptransfer.coord_check import coord_check

    depths = _depths(args.depths) if args.depths else []
    if depths and args.kind == "mlp":
        raise ConfigError("--depths: an mlp has no residual blocks (a depth sweep needs a gpt)")
    worst = coord_check(
        base_run(args, depths[0] if depths else args.depth),
        args.parameterizations.split(","),
        _ints(args.widths),
        _fractions(args.densities),
        _ints(args.seeds),
        args.out,
        depths,
        _show_progress,
    )
    print(file=sys.stderr)
    print("largest max/min ratio over layer groups and steps (1 = flat):")
    print(worst.round(2).to_string())
    print(f"wrote {args.out}/{COORD_CHECK_FILE} and coord_check_*.png")
    return 0


def _depths(text: str) -> list[int]:
    """``--depths``: positive integers, one line of error otherwise."""
    try:
        depths = _ints(text)
    except ValueError:
        raise ConfigError(f"--depths must be positive integers, e.g. 2,4,8; got {text!r}") from None
    for depth in depths:
        check_depth("--depths", depth)
    return depths


def _show_progress(i: int, n: int, run: RunConfig) -> None:
    print(
        f"\r[{i}/{n}] {run.parameterization} width {run.model.width} density "
        f"{run.model.density:g} depth {run.model.depth} seed {run.seed}   ",
        end="",
        file=sys.stderr,
        flush=True,
    )
