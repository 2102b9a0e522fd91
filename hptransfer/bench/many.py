"""``hptransfer bench many``: a sweep of many tiny trials through the real Ray path.

``--trials`` runs of a tiny GPT (a few steps on the synthetic corpus: milliseconds of
training each) go through :func:`hptransfer.sweep.run_trials` on an embedded Ray, so the
wall time is nearly all orchestration. Reported: every trial stored exactly once (the stored
ids against the planned ones), the driver's resident memory (sampled while the sweep runs,
against the trials stored so far) and its growth after the first stored trial, and the
overhead per trial: (wall − Ray start-up − training / concurrency) / (trials / concurrency).
Written to ``results/bench/many.parquet`` (one row per memory sample, the summary in every
row) and ``many.png``.
"""

from __future__ import annotations

import argparse
import datetime
import io
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

from hptransfer.bench import add_out_folder, positive_int, save_png, subplots
from hptransfer.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from hptransfer.param import BaseHPs, BaseShape

RSS_GROWTH_LIMIT_MB = 200.0
SAMPLE_S = 0.5


def tiny_runs(trials: int) -> list[RunConfig]:
    """``trials`` distinct runs (one LR each) of a model that trains in milliseconds."""
    template = RunConfig(
        model=ModelConfig(kind="gpt", width=16, depth=1, heads=2, context=8),
        data=DataConfig(corpus="synthetic", batch_size=4, seq_len=8, eval_batches=1),
        train=TrainConfig(steps=5, warmup_steps=1),
        base=BaseShape(width=16),
    )
    return [
        RunConfig(
            model=template.model,
            data=template.data,
            train=template.train,
            hps=BaseHPs(lr=2.0 ** (-12 + 8 * i / trials)),
            base=template.base,
        )
        for i in range(trials)
    ]


def rss_mb() -> float:
    """This process's resident memory (Linux ``/proc``), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class _StoredCounter(io.TextIOBase):
    """The sweep's progress stream: counts the finished-run lines, keeps no text."""

    def __init__(self) -> None:
        self.stored = 0

    def write(self, text: str) -> int:
        self.stored += sum(1 for line in text.splitlines() if line.startswith("["))
        return len(text)


class _Sampler(threading.Thread):
    """Samples (seconds, resident MB, trials stored) every SAMPLE_S until stopped."""

    def __init__(self, counter: _StoredCounter):
        super().__init__(daemon=True)
        self.counter = counter
        self.samples: list[dict[str, float]] = []
        self.done = threading.Event()
        self.start_time = time.perf_counter()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_S):
            self.sample()

    def sample(self) -> None:
        elapsed = time.perf_counter() - self.start_time
        self.samples.append({"t_s": elapsed, "rss_mb": rss_mb(), "stored": self.counter.stored})


def bench_many(trials: int, concurrency: int) -> pd.DataFrame:
    """Run the tiny sweep; one row per memory sample, the summary columns in every row."""
    from hptransfer.runtime.cluster import Execution, ray_session
    from hptransfer.runtime.identity import point_id, trial_id
    from hptransfer.runtime.resources import Resources
    from hptransfer.store import ResultsStore
    from hptransfer.sweep import run_trials

    runs = tiny_runs(trials)
    counter = _StoredCounter()
    execution = Execution(resources=Resources(max_concurrent=concurrency), out=counter)
    folder = Path(tempfile.mkdtemp(prefix="hpt-many-", dir="/tmp"))
    load = os.getloadavg()[0]
    try:
        start = time.perf_counter()
        with ray_session(folder, execution):
            pass
        startup = time.perf_counter() - start
        sampler = _Sampler(counter)
        sampler.sample()
        sampler.start()
        start = time.perf_counter()
        run_trials(runs, folder / "many", sweep="many", execution=execution)
        wall = time.perf_counter() - start
        sampler.done.set()
        sampler.join()
        sampler.sample()
        stored = ResultsStore(folder / "many").read_trials()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    planned = {trial_id(point_id(run), run.seed) for run in runs}
    frame = pd.DataFrame(sampler.samples)
    first = frame.loc[frame["stored"] >= 1, "rss_mb"]
    train_s = float(stored["wall_s"].sum())
    summary = {
        "trials": trials,
        "concurrency": concurrency,
        "stored_rows": len(stored),
        "stored_once": bool(stored["trial_id"].is_unique and set(stored["trial_id"]) == planned),
        "wall_s": wall,
        "startup_s": startup,
        "train_s": train_s,
        "overhead_per_trial_s": (wall - startup - train_s / concurrency) / (trials / concurrency),
        "rss_start_mb": float(frame["rss_mb"].iloc[0]),
        "rss_growth_mb": float(frame["rss_mb"].max() - first.iloc[0]) if len(first) else 0.0,
        "load_average": load,
        "cpus": len(os.sched_getaffinity(0)),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    return frame.assign(**summary)


def summary_lines(frame: pd.DataFrame) -> list[str]:
    row = frame.iloc[-1]
    growth = "met" if row["rss_growth_mb"] < RSS_GROWTH_LIMIT_MB else "MISSED"
    return [
        f"{row['trials']} trials, {row['concurrency']} at a time: {row['stored_rows']} rows "
        f"stored, each trial exactly once: {'yes' if row['stored_once'] else 'NO'}",
        f"wall {row['wall_s']:.1f} s (Ray start-up {row['startup_s']:.1f} s, training "
        f"{row['train_s']:.1f} s in all): overhead {row['overhead_per_trial_s'] * 1000:.0f} ms "
        "per trial",
        f"driver memory {row['rss_start_mb']:.0f} MB at the start, growth after the first "
        f"stored trial {row['rss_growth_mb']:.0f} MB (target < {RSS_GROWTH_LIMIT_MB:g}: {growth})",
        f"load average at the start: {row['load_average']:.1f} on {row['cpus']} CPUs",
    ]


def plot(frame: pd.DataFrame, path: Path) -> None:
    fig, (memory, rate) = subplots(1, 2, figsize=(10, 3.5))
    memory.plot(frame["stored"], frame["rss_mb"])
    memory.set_xlabel("trials stored")
    memory.set_ylabel("driver resident memory (MB)")
    rate.plot(frame["t_s"], frame["stored"])
    rate.set_xlabel("seconds")
    rate.set_ylabel("trials stored")
    row = frame.iloc[-1]
    fig.suptitle(
        f"{row['trials']} tiny trials on Ray: {row['overhead_per_trial_s'] * 1000:.0f} ms "
        f"overhead per trial, memory growth {row['rss_growth_mb']:.0f} MB",
        fontsize=10,
    )
    save_png(fig, path)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "many", help="many tiny trials on Ray: stored once, driver memory, overhead per trial"
    )
    parser.add_argument("--trials", type=positive_int, default=1000, help="trials (default: 1000)")
    parser.add_argument(
        "--concurrency", type=positive_int, default=2, help="trials at a time (default: 2)"
    )
    add_out_folder(parser, "many.parquet", "many.png")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hptransfer.store import write_frame

    frame = bench_many(args.trials, args.concurrency)
    args.out.mkdir(parents=True, exist_ok=True)
    write_frame(args.out / "many.parquet", frame)
    plot(frame, args.out / "many.png")
    print("\n".join(summary_lines(frame)))
    print(f"figures: {args.out / 'many.parquet'}, {args.out / 'many.png'}")
    return 0 if bool(frame["stored_once"].iloc[-1]) else 1
