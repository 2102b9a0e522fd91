"""``hptransfer bench scale``: SμPar against SP at a width the CPU cannot reach (issue 29).

One process, no Ray or Optuna: the targets of ``transfer --from <fit> --to width=W,density=ρ``
(SμPar, and SP with the same base HPs), each on a grid of η × 2^k around its transferred η,
trained in turn by the sweeps' own loop (:func:`hptransfer.train.train`; bf16 autocast on
CUDA, fp32 on CPU). The data are the shipped Shakespeare bytes and the base HPs the committed
default flow's (``results/default_flow``), so a bare checkout can run it. Unless ``--steps``
is given, a short timed run sizes the horizon to ``--time-budget`` seconds for all runs.
Writes ``scale.parquet`` (one row per run), ``scale.png`` (loss against η per density) and
a Markdown summary beside them (the table, tokens per non-zero non-embedding
parameter, epochs, the gaps).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from hptransfer.bench import add_out_folder, bench_device, numbers, positive_int, save_png, subplots
from hptransfer.budget import TargetShape, TargetSpec
from hptransfer.config import RunConfig
from hptransfer.errors import ConfigError
from hptransfer.sparse_evidence import sparse_budget
from hptransfer.store import write_frame, write_text

if TYPE_CHECKING:
    from hptransfer.train import RunResult

PARAMETERIZATIONS = ("supar", "sp")
CALIBRATION_STEPS = 30
MIN_STEPS, STEP_MULTIPLE = 20, 10
MAX_EPOCHS = 2.0  # the horizon is capped so no run sees a token more than twice


@dataclasses.dataclass(frozen=True)
class Probe:
    """What to run: the fit, the target shape, the η offsets (octaves) and the budget."""

    source: Path
    width: int
    densities: tuple[float, ...]
    octaves: tuple[float, ...]
    batch_size: int
    steps: int | None
    time_budget_s: float
    eval_batches: int
    device: str
    precision: str
    seed: int = 0


def _floats(text: str) -> tuple[float, ...]:
    return numbers(text, float, "comma-separated numbers", math.isfinite, "expected finite numbers")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "scale",
        help="SμPar vs SP at a wide target on an η grid around the transferred η (GPU probe)",
    )
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=Path("results/default_flow"),
        help="fitted sweep whose base HPs transfer (default: results/default_flow)",
    )
    parser.add_argument("--width", type=positive_int, default=512, help="target width (512)")
    parser.add_argument(
        "--densities",
        type=_floats,
        default=(1.0, 0.125),
        help="target densities (1,0.125: d·ρ = 512 and 64)",
    )
    parser.add_argument(
        "--octaves",
        type=_floats,
        default=(-1.0, -0.5, 0.0, 0.5),
        help="η = transferred η × 2^k for each k (-1,-0.5,0,0.5)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=64, help="rows per step (64)")
    parser.add_argument(
        "--steps", type=positive_int, help="steps per run (default: sized to --time-budget)"
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=270.0,
        help="seconds of training for all runs together, when --steps is not "
        "given (270: the whole probe fits gpu-check.sh's 400 s)",
    )
    parser.add_argument(
        "--eval-batches", type=positive_int, default=256, help="validation batches per run (256)"
    )
    parser.add_argument("--device", default="auto", help="auto (cuda if present), cuda or cpu")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="auto: bf16 on CUDA, fp32 on CPU",
    )
    add_out_folder(parser, "scale.parquet", "scale.png", "scale.md")
    parser.set_defaults(func=run)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    if device not in ("cuda", "cpu"):
        raise ConfigError(f"--device must be auto, cuda or cpu; got {device!r}")
    if args.time_budget <= 0:
        raise ConfigError(f"--time-budget must be > 0 seconds; got {args.time_budget}")
    if not all(0 < d <= 1 for d in args.densities):
        raise ConfigError(f"--densities must lie in (0, 1]; got {args.densities}")
    probe = Probe(
        args.source, args.width, args.densities, args.octaves, args.batch_size, args.steps,
        args.time_budget, args.eval_batches, device, args.precision,
    )  # fmt: skip
    frame = run_probe(probe)
    args.out.mkdir(parents=True, exist_ok=True)
    write_frame(args.out / "scale.parquet", frame)
    plot(frame, args.out / "scale.png")
    summary = summarize(frame)
    write_text(args.out / "scale.md", summary)
    print(summary)
    return 0


def target_runs(probe: Probe, steps: int) -> list[tuple[RunConfig, float]]:
    """(run, octave) per density × parameterization × η offset, transferred as ``transfer``
    does (the completedp budget rule moves the base HPs to ``steps`` × the batch)."""
    from hptransfer.transfer import Request, load_source, target_runs

    source = load_source(probe.source)
    targets = [
        TargetSpec(TargetShape(width=probe.width, density=d), steps=steps, batch=probe.batch_size)
        for d in probe.densities
    ]
    primary, *baselines = PARAMETERIZATIONS  # the baselines train with SμPar's base HPs
    request = Request(targets, primary, compare=tuple(baselines), seeds=(probe.seed,))
    return [
        (dataclasses.replace(run, data=_eval_data(run, probe), hps=_times(run, k)), k)
        for run in target_runs(source, request)
        for k in probe.octaves
    ]


def _eval_data(run: RunConfig, probe: Probe):
    return dataclasses.replace(run.data, eval_batches=probe.eval_batches)


def _times(run: RunConfig, octaves: float):
    return dataclasses.replace(run.hps, lr=run.hps.lr * 2.0**octaves)


def train_one(run: RunConfig, probe: Probe) -> RunResult:
    """Train ``run`` in this process (bf16 autocast where the probe says so)."""
    from hptransfer.train import train

    autocast = contextlib.nullcontext
    if _precision(probe) == "bf16":
        autocast = functools.partial(torch.autocast, probe.device, dtype=torch.bfloat16)
    return train(run, device=probe.device, autocast=autocast)


def sized_steps(probe: Probe, runs: int, train_tokens: int, row_tokens: int) -> int:
    """Steps per run: ``probe.steps``, else what fits the time budget by a short timed run;
    never more than :data:`MAX_EPOCHS` of the training tokens."""
    cap = int(MAX_EPOCHS * train_tokens / (probe.batch_size * row_tokens))
    if probe.steps is not None:
        return min(probe.steps, cap)
    sample, _ = target_runs(probe, CALIBRATION_STEPS)[0]
    sample = dataclasses.replace(sample, data=dataclasses.replace(sample.data, eval_batches=1))
    train_one(sample, probe)  # warms up the device (allocator, kernels)
    start = time.perf_counter()
    train_one(sample, probe)
    per_step = (time.perf_counter() - start) / CALIBRATION_STEPS
    eval_s = runs * probe.eval_batches * per_step / 3  # a forward is ~1/3 of a step
    steps = int((probe.time_budget_s - eval_s) / (runs * per_step))
    steps = max(MIN_STEPS, min(cap, steps // STEP_MULTIPLE * STEP_MULTIPLE))
    print(f"calibration: {per_step * 1e3:.1f} ms/step on {probe.device}: {steps} steps per run")
    return steps


def run_probe(probe: Probe) -> pd.DataFrame:
    """Every run of the probe, one row each."""
    from hptransfer.data import load_dataset

    first, _ = target_runs(probe, MIN_STEPS)[0]
    train_tokens = len(load_dataset(first.data).train)
    n_runs = len(PARAMETERIZATIONS) * len(probe.densities) * len(probe.octaves)
    steps = sized_steps(probe, n_runs, train_tokens, first.data.seq_len)
    rows = []
    for i, (run, octave) in enumerate(target_runs(probe, steps), 1):
        result = train_one(run, probe)
        budget = sparse_budget(run)
        rows.append({
            "parameterization": run.parameterization,
            "width": run.model.width,
            "depth": run.model.depth,
            "density": run.model.density,
            "per_row": budget.per_row,
            "octave": octave,
            "lr": run.hps.lr,
            "steps": run.train.steps,
            "tokens": budget.tokens,
            "tokens_per_nonzero": budget.tokens_per_nonzero,
            "tokens_per_nonzero_non_embedding": budget.tokens_per_nonzero_non_embedding,
            "epochs": budget.tokens / train_tokens,
            "val_loss": result.val_loss,
            "val_loss_se": result.val_loss_se,
            "train_loss": result.train_loss,
            "diverged": result.diverged,
            "wall_s": result.wall_s,
            "device": bench_device(probe.device),
            "precision": _precision(probe),
        })  # fmt: skip
        last = rows[-1]
        print(
            f"[{i}/{n_runs}] {run.parameterization:5} density {run.model.density:g} "
            f"η × 2^{octave:+g}  val {last['val_loss']:.4f}  {last['wall_s']:.1f}s",
            flush=True,
        )
    return pd.DataFrame(rows)


def _precision(probe: Probe) -> str:
    if probe.precision != "auto":
        return probe.precision
    return "bf16" if probe.device == "cuda" else "fp32"


def summarize(frame: pd.DataFrame) -> str:
    """The probe's table, its budget per density and SμPar − SP per density (one seed)."""
    first = frame.iloc[0]
    lines = [
        f"# bench scale: SμPar vs SP at width {first['width']}, depth {first['depth']} "
        f"({first['device']}, {first['precision']})",
        "",
        "```text",
        frame[["parameterization", "density", "octave", "lr", "val_loss", "val_loss_se"]].to_string(
            index=False
        ),
        "```",
        "",
    ]
    for density, part in frame.groupby("density", sort=False):
        row = part.iloc[0]
        best = part.groupby("parameterization")["val_loss"].min()
        at_transfer = part[part["octave"].eq(0)].set_index("parameterization")["val_loss"]
        lines.append(
            f"- density {density:g} (d·ρ = {row['per_row']:g}): {row['steps']} steps, "
            f"{row['tokens']:,} tokens = {row['tokens_per_nonzero_non_embedding']:.3g} per "
            f"non-zero non-embedding parameter ({row['tokens_per_nonzero']:.3g} per non-zero "
            f"parameter), {row['epochs']:.2f} epochs; SμPar − SP at the transferred η "
            f"{_gap(at_transfer)}, each at its best grid η {_gap(best)} (one seed)"
        )
    return "\n".join(lines) + "\n"


def _gap(losses: pd.Series) -> str:
    if not {"supar", "sp"} <= set(losses.index):
        return "n/a"
    return f"{losses['supar'] - losses['sp']:+.4f} nats"


def plot(frame: pd.DataFrame, path: Path) -> None:
    from hptransfer.analysis.names import param_color
    from hptransfer.param import param_label

    densities = list(dict.fromkeys(frame["density"]))
    fig, axes = subplots(1, len(densities), figsize=(4.5 * len(densities), 3.6), squeeze=False)
    for ax, density in zip(axes[0], densities, strict=True):
        part = frame[frame["density"].eq(density)]
        for p, runs in part.groupby("parameterization"):
            runs = runs.sort_values("lr")
            ax.errorbar(
                runs["lr"].map(math.log2), runs["val_loss"], yerr=runs["val_loss_se"],
                marker="o", label=param_label(p), color=param_color(p),
            )  # fmt: skip
            centre = runs[runs["octave"].eq(0)]
            ax.scatter(centre["lr"].map(math.log2), centre["val_loss"], s=90,
                       facecolors="none", edgecolors="black", zorder=3)  # fmt: skip
        row = part.iloc[0]
        ax.set_title(
            f"density {density:g} (d·ρ = {row['per_row']:g}): "
            f"{row['tokens_per_nonzero_non_embedding']:.2g} tok/nz non-emb param",
            fontsize=8,
        )
        ax.set_xlabel("log2 η (ringed: transferred)")
        ax.set_ylabel("validation loss (nats)")
        ax.legend(fontsize=8)
    first = frame.iloc[0]
    fig.suptitle(
        f"bench scale: width {first['width']}, {first['steps']} steps, {first['epochs']:.2f} "
        f"epochs; {first['device']} ({first['precision']})",
        fontsize=9,
    )
    save_png(fig, path)
