"""``hptransfer bench sweep``: what Ray Tune costs over a plain in-process Optuna loop.

The same trials (the GPT proxy on Shakespeare, 16 LRs a quarter octave apart) run twice at
equal concurrency: through :func:`hptransfer.sweep.run_trials` (embedded Ray: start-up,
worker processes, driver-side storage) and through ``optuna`` ``study.optimize(n_jobs=…)``
with the same points enqueued (threads in this process, nothing stored). This is repeated
for each trial length (``--seconds``: steps are calibrated so one trial takes about that).

Reported per length: both wall times and their ratio (target ≤ 1.10 once trials last
≥ 10 s), Ray's start-up and shutdown (timed on their own), the trials' own training time
(summed, / concurrency) and the overhead per trial: (wall − start-up − training) /
(trials / concurrency): for Ray, worker processes (each imports torch once: actors are
reused), scheduling, reporting and storing. The overhead does not depend on how busy the
machine is; wall times and their ratio do (``load_average`` is recorded).
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
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hptransfer.bench import add_out_folder, positive_int
from hptransfer.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from hptransfer.param import BaseShape

TARGET_RATIO = 1.10
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


@dataclass(frozen=True)
class Timing:
    """One method's wall time, its trials' own training time (summed), its start-up."""

    wall_s: float
    train_s: float
    startup_s: float = 0.0


def time_optuna_loop(runs: list[RunConfig], concurrency: int) -> Timing:
    """The runs as an Optuna study with the points enqueued, ``n_jobs`` threads."""
    import optuna

    from hptransfer.train import train

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    template = runs[0]
    lrs = [run.hps.lr for run in runs]
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    for lr in lrs:
        study.enqueue_trial({"lr": lr})
    train_s: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", min(lrs), max(lrs), log=True)
        result = train(dataclasses.replace(template, hps=dataclasses.replace(template.hps, lr=lr)))
        train_s.append(result.wall_s)
        return result.val_loss

    start = time.perf_counter()
    study.optimize(objective, n_trials=len(runs), n_jobs=concurrency)
    return Timing(time.perf_counter() - start, sum(train_s))


def time_ray(runs: list[RunConfig], concurrency: int) -> Timing:
    """The runs through run_trials on an embedded Ray; its start-up and shutdown timed apart."""
    from hptransfer.runtime.cluster import Execution, ray_session
    from hptransfer.runtime.resources import Resources
    from hptransfer.sweep import run_trials

    execution = Execution(resources=Resources(max_concurrent=concurrency), out=io.StringIO())
    folder = Path(tempfile.mkdtemp(prefix="hpt-bench-"))
    try:
        start = time.perf_counter()
        with ray_session(folder, execution):
            pass
        startup = time.perf_counter() - start
        start = time.perf_counter()
        rows = run_trials(runs, folder / "trials", sweep="bench", execution=execution)
        return Timing(time.perf_counter() - start, float(rows["wall_s"].sum()), startup)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bench_sweep(seconds: list[float], trials: int, concurrency: int) -> pd.DataFrame:
    """One row per (trial length, method)."""
    import torch

    torch.set_num_threads(1)  # one thread per concurrent trial, as in the Ray workers
    rows = [row for target in seconds for row in _compare(target, trials, concurrency)]
    frame = pd.DataFrame(rows)
    frame["cpus"] = len(os.sched_getaffinity(0))
    frame["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return frame


def _compare(target: float, trials: int, concurrency: int) -> list[dict[str, object]]:
    """Both methods on the same trials of about ``target`` seconds each; the plain loop runs
    before and after Ray (mean kept), so a load change on a shared machine hits both alike."""
    load = os.getloadavg()[0]
    steps = calibrate_steps(target)
    template = proxy_run(steps)
    runs = [
        dataclasses.replace(template, hps=dataclasses.replace(template.hps, lr=lr))
        for lr in learning_rates(trials)
    ]
    before = time_optuna_loop(runs, concurrency)
    ray = time_ray(runs, concurrency)
    after = time_optuna_loop(runs, concurrency)
    plain = Timing((before.wall_s + after.wall_s) / 2, (before.train_s + after.train_s) / 2)
    waves = trials / concurrency
    common = {"target_trial_s": target, "steps": steps, "trials": trials,
              "concurrency": concurrency, "trial_s": plain.train_s / trials,
              "plain_spread": abs(before.wall_s - after.wall_s) / plain.wall_s,
              "load_average": load}  # fmt: skip
    return [
        {**common, "method": method, "wall_s": t.wall_s, "train_s": t.train_s / concurrency,
         "startup_s": t.startup_s, "ratio_to_plain": t.wall_s / plain.wall_s,
         "overhead_per_trial_s": (t.wall_s - t.startup_s - t.train_s / concurrency) / waves}
        for method, t in (("optuna_loop", plain), ("ray_tune", ray))
    ]  # fmt: skip


def format_table(frame: pd.DataFrame) -> str:
    lines = [
        f"{'trial':>7} {'steps':>6} {'method':<12} {'wall':>8} {'ratio':>6} "
        f"{'start-up':>9} {'training':>9} {'overhead/trial':>15}"
    ]
    for row in frame.itertuples():
        lines.append(
            f"{row.trial_s:6.1f}s {row.steps:6d} {row.method:<12} {row.wall_s:7.1f}s "
            f"{row.ratio_to_plain:6.2f} {row.startup_s:8.1f}s {row.train_s:8.1f}s "
            f"{row.overhead_per_trial_s:14.2f}s"
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


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep", help="Ray Tune vs a plain Optuna loop: wall time and per-trial overhead"
    )
    parser.add_argument(
        "--seconds", type=_seconds, default=[1.0, 4.0, 20.0],
        help="trial lengths to compare, comma-separated (default: 1,4,20)",
    )  # fmt: skip
    parser.add_argument("--trials", type=positive_int, default=16, help="trials (default: 16)")
    parser.add_argument(
        "--concurrency", type=positive_int, default=2, help="trials at a time (default: 2)"
    )
    add_out_folder(parser, "sweep.parquet")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hptransfer.store import write_frame

    frame = bench_sweep(args.seconds, args.trials, args.concurrency)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "sweep.parquet"
    write_frame(path, frame)
    print(format_table(frame))
    print(target_check(frame))
    print(f"figures: {path}")
    return 0
