"""``hptransfer bench target``: a target on Ray Train with 1 and 2 workers on this machine.

For each worker count, one DDP run of a GPT (default width 512, depth 4, fp32) on the
shipped Shakespeare: steady tokens/s (from the live progress records, after the first steps),
the time one checkpoint costs and its share of the step time at ``checkpoint_every: 100``,
and the peak memory of the workers (RSS, summed) against the dry-run estimate. The
machine's 1-minute load average is stored beside every row: on a shared box the figures
say as much about the neighbours as about the code.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
from pathlib import Path

import pandas as pd

from hptransfer.bench import add_out_folder, positive_ints
from hptransfer.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from hptransfer.data import load_dataset
from hptransfer.param import BaseShape
from hptransfer.store import write_frame, write_text
from hptransfer.train import complete_run

WARMUP_STEPS = 3  # excluded from the throughput (start-up, first allocations)
CHECKPOINT_EVERY = 100


def bench_run(args: argparse.Namespace) -> RunConfig:
    run = RunConfig(
        model=ModelConfig(
            width=args.width,
            depth=args.depth,
            heads=args.heads,
            context=args.seq_len,
            density=args.density,
        ),
        data=DataConfig(batch_size=args.batch_size, seq_len=args.seq_len, eval_batches=1),
        train=TrainConfig(steps=args.steps),
        base=BaseShape(width=args.width),
    )
    return complete_run(run, load_dataset(run.data))


def bench_target(run: RunConfig, workers: int, folder: Path) -> dict:
    """One run on ``workers`` workers (checkpoints every few steps to time them)."""
    from hptransfer.cost import estimate, measured_flops_per_s
    from hptransfer.distributed import run_target
    from hptransfer.distributed.cost import target_estimate
    from hptransfer.runtime.resources import TargetConfig

    every = max(1, run.train.steps // 3)
    target = TargetConfig(workers=workers, checkpoint_every=every, keep_checkpoints=1)
    progress: list[dict] = []
    result = run_target(run, target, folder, on_progress=progress.append)
    steady = [r for r in progress if "loss" in r and r["step"] > WARMUP_STEPS]
    # checkpoints happen on the first step of each interval's end: leave them out
    step_times = [
        later["elapsed_s"] - earlier["elapsed_s"]
        for earlier, later in itertools.pairwise(steady)
        if later["step"] % every
    ]
    step_s = statistics.median(step_times)
    tokens = run.data.batch_size * run.data.seq_len
    checkpoint_s = statistics.median(result.metrics["checkpoint_s"])
    predicted = target_estimate(estimate(run, measured_flops_per_s(1)), run, target)
    peak = sum(result.metrics["peak_memory"])
    return {
        "workers": workers,
        "strategy": target.strategy,
        "precision": "fp32",
        "width": run.model.width,
        "depth": run.model.depth,
        "density": run.model.density,
        "batch": run.data.batch_size,
        "seq_len": run.data.seq_len,
        "step_s": step_s,
        "tokens_per_s": tokens / step_s,
        "checkpoint_s": checkpoint_s,
        "checkpoint_share_at_100": checkpoint_s / (CHECKPOINT_EVERY * step_s),
        "peak_memory_gib": peak / 2**30,
        "estimated_memory_gib": predicted.memory_bytes / 2**30,
        "estimate_error": predicted.memory_bytes / peak - 1,
        "load_avg_1min": os.getloadavg()[0],
    }


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "target", help="a target on Ray Train: tokens/s with 1 and 2 workers, checkpoint cost"
    )
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--density", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument(
        "--workers", type=positive_ints, default=(1, 2), help="worker counts (default: 1,2)"
    )
    add_out_folder(parser, "target.parquet", "target.md")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    counts = args.workers
    config = bench_run(args)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hpt-bt-", dir="/tmp") as root:
        for workers in counts:
            rows.append(bench_target(config, workers, Path(root) / f"w{workers}"))
            print(f"{workers} worker(s): {rows[-1]['tokens_per_s']:,.0f} tokens/s")
    table = pd.DataFrame(rows)
    if 1 in counts and len(counts) > 1:
        one = table.loc[table["workers"].eq(1), "tokens_per_s"].iloc[0]
        table["scaling_efficiency"] = table["tokens_per_s"] / (one * table["workers"])
    shown = [c for c in table.columns if c not in ("strategy", "precision", "seq_len", "batch")]
    text = table[shown].round(3).to_string(index=False)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    path, summary = args.out / "target.parquet", args.out / "target.md"
    write_frame(path, table)
    write_text(summary, _summary(config, table, text))
    print(f"wrote {path} and {summary}")
    return 0


def _summary(run: RunConfig, table: pd.DataFrame, text: str) -> str:
    m = run.model
    return (
        f"# bench target: GPT width {m.width}, depth {m.depth}, density {m.density:g}, "
        f"batch {run.data.batch_size}×{run.data.seq_len}, fp32, DDP on Ray Train (CPU, gloo)\n\n"
        f"```text\n{text}\n```\n\n"
        "checkpoint_share_at_100: one checkpoint's time over 100 steps' time. estimate_error: "
        "the dry-run memory estimate over the workers' summed peak RSS, minus 1. "
        f"load_avg_1min: this machine's load while each row ran ({len(os.sched_getaffinity(0))} "
        "CPUs).\n"
    )
