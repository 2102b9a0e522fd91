"""``hptransfer bench sweep``: what Ray Tune costs over a plain in-process Optuna loop.

The same trials (the GPT proxy on Shakespeare, 16 LRs a quarter octave apart) run twice at
equal concurrency: through :func:`hptransfer.sweep.run_trials` (embedded Ray: start-up,
worker processes, driver-side storage) and through ``optuna`` ``study.optimize(n_jobs=…)``
with the same points enqueued (threads in this process, nothing stored). This is repeated
for each trial length (``--seconds``: steps are calibrated so one trial takes about that).

Reported per length: both wall times, their ratio (target ≤ 1.25 once trials last ≥ 10 s),
Ray's start-up and shutdown (measured on its own), and the overhead per trial beyond that:
(Ray wall − start-up − plain wall) / (trials / concurrency), i.e. worker processes (each
imports torch once: actors are reused), scheduling, reporting and storing.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import io
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from hptransfer.config import BaseShape, DataConfig, ModelConfig, RunConfig, TrainConfig

TARGET_RATIO = 1.25
LONG_TRIAL_S = 10.0


def proxy_run(steps: int) -> RunConfig:
    """The default proxy's model (sweeps/proxy.yaml), dense SμPar, ``steps`` steps."""
    return RunConfig(
        model=ModelConfig(kind="gpt", width=64, depth=2, heads=4, context=64),
        data=DataConfig(corpus="shakespeare", batch_size=16, seq_len=64, eval_batches=4),
        train=TrainConfig(steps=steps, warmup_steps=max(1, steps // 10)),
        base=BaseShape(width=64),
        parameterization="supar",
    )


def learning_rates(trials: int) -> list[float]:
    return [2.0 ** (-10 + 0.25 * i) for i in range(trials)]


def calibrate_steps(seconds: float) -> int:
    """Steps for one trial of about ``seconds`` on one thread (timed after a warm-up)."""
    from hptransfer.train import train

    train(proxy_run(5))  # first-call costs (imports, allocator) are not per-step costs
    start = time.perf_counter()
    train(proxy_run(20))
    per_step = (time.perf_counter() - start) / 20
    return max(5, round(seconds / per_step))


def time_optuna_loop(runs: list[RunConfig], concurrency: int) -> float:
    """Wall time of the runs as an Optuna study with the points enqueued, n_jobs threads."""
    import optuna

    from hptransfer.train import train

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    template = runs[0]
    lrs = [run.hps.lr for run in runs]
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    for lr in lrs:
        study.enqueue_trial({"lr": lr})

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", min(lrs), max(lrs), log=True)
        run = dataclasses.replace(template, hps=dataclasses.replace(template.hps, lr=lr))
        return train(run).val_loss

    start = time.perf_counter()
    study.optimize(objective, n_trials=len(runs), n_jobs=concurrency)
    return time.perf_counter() - start


def time_ray(runs: list[RunConfig], concurrency: int) -> tuple[float, float]:
    """(wall time of run_trials on an embedded Ray, wall time of Ray's start + shutdown)."""
    from hptransfer.sweep import Execution, run_trials
    from hptransfer.sweep.cluster import ray_session
    from hptransfer.sweep.spec import Resources

    execution = Execution(resources=Resources(max_concurrent=concurrency), out=io.StringIO())
    folder = Path(tempfile.mkdtemp(prefix="hpt-bench-"))
    try:
        start = time.perf_counter()
        with ray_session(folder, execution):
            pass
        startup = time.perf_counter() - start
        start = time.perf_counter()
        run_trials(runs, folder / "trials", sweep="bench", execution=execution)
        return time.perf_counter() - start, startup
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_sweep(seconds: list[float], trials: int, concurrency: int) -> pd.DataFrame:
    """One row per (trial length, method)."""
    import torch

    torch.set_num_threads(1)  # one thread per concurrent trial, as in the Ray workers
    rows = [row for target in seconds for row in _compare(target, trials, concurrency)]
    frame = pd.DataFrame(rows)
    frame["ratio_to_plain"] = frame["wall_s"] / frame["plain_wall_s"]
    frame["trial_s"] = frame["plain_wall_s"] / (frame["trials"] / frame["concurrency"])
    frame["cpus"] = len(os.sched_getaffinity(0))
    frame["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return frame.drop(columns="plain_wall_s")


def _compare(target: float, trials: int, concurrency: int) -> list[dict[str, object]]:
    """Both methods on the same trials of about ``target`` seconds each."""
    load = os.getloadavg()[0]  # other work on the machine slows both methods
    steps = calibrate_steps(target)
    template = proxy_run(steps)
    runs = [
        dataclasses.replace(template, hps=dataclasses.replace(template.hps, lr=lr))
        for lr in learning_rates(trials)
    ]
    plain = time_optuna_loop(runs, concurrency)
    ray_wall, startup = time_ray(runs, concurrency)
    common = {
        "target_trial_s": target,
        "steps": steps,
        "trials": trials,
        "concurrency": concurrency,
        "plain_wall_s": plain,
        "load_average": load,
    }
    overhead = (ray_wall - startup - plain) / (trials / concurrency)
    return [
        {**common, "method": "optuna_loop", "wall_s": plain, "startup_s": 0.0,
         "overhead_per_trial_s": 0.0},
        {**common, "method": "ray_tune", "wall_s": ray_wall, "startup_s": startup,
         "overhead_per_trial_s": overhead},
    ]  # fmt: skip


def format_table(frame: pd.DataFrame) -> str:
    lines = [
        f"{'trial':>7} {'steps':>6} {'method':<12} {'wall':>8} {'ratio':>6} "
        f"{'start-up':>9} {'overhead/trial':>15}"
    ]
    for row in frame.itertuples():
        lines.append(
            f"{row.trial_s:6.1f}s {row.steps:6d} {row.method:<12} {row.wall_s:7.1f}s "
            f"{row.ratio_to_plain:6.2f} {row.startup_s:8.1f}s {row.overhead_per_trial_s:14.2f}s"
        )
    return "\n".join(lines)


def target_check(frame: pd.DataFrame) -> str:
    long = frame[(frame["method"] == "ray_tune") & (frame["trial_s"] >= LONG_TRIAL_S * 0.9)]
    if long.empty:
        return f"target not measured: no trial length ≥ {LONG_TRIAL_S:g} s (use --seconds)"
    ratio = float(long["ratio_to_plain"].max())
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    return (
        f"target Ray/plain wall ≤ {TARGET_RATIO} for trials ≥ {LONG_TRIAL_S:g} s: "
        f"{ratio:.2f} ({verdict})"
    )


def _seconds(text: str) -> list[float]:
    try:
        values = [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds like 1,10; got {text!r}") from None
    if not values or not all(v > 0 and math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected positive seconds; got {text!r}")
    return values


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return int(text)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep", help="Ray Tune vs a plain Optuna loop: wall time and per-trial overhead"
    )
    parser.add_argument(
        "--seconds", type=_seconds, default=[1.0, LONG_TRIAL_S],
        help="trial lengths to compare, comma-separated (default: 1,10)",
    )  # fmt: skip
    parser.add_argument("--trials", type=_positive, default=16, help="trials (default: 16)")
    parser.add_argument(
        "--concurrency", type=_positive, default=2, help="trials at a time (default: 2)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("results/bench"),
        help="folder for sweep.parquet (default: results/bench)",
    )  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hptransfer.store import atomic_write

    frame = bench_sweep(args.seconds, args.trials, args.concurrency)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "sweep.parquet"
    atomic_write(path, lambda handle: frame.to_parquet(handle, index=False))
    print(format_table(frame))
    print(target_check(frame))
    print(f"figures: {path}")
    return 0
