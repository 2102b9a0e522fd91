"""``hptransfer bench train``: training steps/s of the GPT, dense and sparse, against baselines.

Variants, all the same shape and the same SμPar HPs:

- ``nn.Linear``: the GPT with every hidden layer swapped for a plain ``nn.Linear``;
- ``ours, density 1``: the model as built (``MaskedLinear`` at density 1);
- ``ours, density ρ``: the torch masked path (zero-stored weights, masked ``dW``);
- ``parametrize, density ρ``: masking by ``torch.nn.utils.parametrize`` (``W ⊙ M`` recomputed
  each step), as in SμPar's reference implementation.

Variants are timed in interleaved rounds (the order rotating from round to round), so a busy
machine slows them alike. Each round gives every variant a ratio against ``nn.Linear`` timed
in that same round; the table keeps the median of the per-round steps/s and ratios and the
ratios' spread (quartiles, min and max). The default clock is the process's CPU time, which a
loaded machine inflates far less than wall time (``--clock wall`` for the latter).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable

import pandas as pd
import torch
from torch import nn
from torch.nn.utils import parametrize

from hptransfer.bench import add_out_folder, bench_device, load_average, positive_int
from hptransfer.config import DataConfig, ModelConfig, RunConfig
from hptransfer.models import MaskedLinear, build_model, plan_parameters
from hptransfer.optim import build_optimizer
from hptransfer.param import BaseShape
from hptransfer.store import write_frame
from hptransfer.train import loss_fn


class _Mask(nn.Module):
    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


def _swap_linears(model: nn.Module, masked: bool) -> None:
    """Replace each MaskedLinear by a plain nn.Linear (optionally masked by parametrize)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, MaskedLinear):
                plain = nn.Linear(
                    child.in_features, child.out_features, bias=child.bias is not None
                )
                plain.load_state_dict({k: v for k, v in child.state_dict().items() if k != "mask"})
                if masked and child.mask is not None:
                    parametrize.register_parametrization(plain, "weight", _Mask(child.mask))
                setattr(parent, name, plain)


def _variant(run: RunConfig, density: float, swap: str | None) -> Callable[[], None]:
    run = dataclasses.replace(run, model=run.model.replace(density=density))
    model = build_model(run)
    plans = plan_parameters(model, run)
    if swap:
        _swap_linears(model, masked=swap == "parametrize")
        names = dict(model.named_parameters())  # parametrize renames weight -> original
        plans = [dataclasses.replace(p, name=_renamed(p.name, names)) for p in plans]
    optimizer = build_optimizer(model, plans, run.train)
    generator = torch.Generator().manual_seed(0)
    vocab, batch, seq = run.model.input_size, run.data.batch_size, run.data.seq_len

    def step() -> None:
        x = torch.randint(vocab, (batch, seq), generator=generator)
        loss = loss_fn(model, x, torch.roll(x, -1, 1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _renamed(name: str, names: dict[str, object]) -> str:
    if name in names:
        return name
    return name.replace(".weight", ".parametrizations.weight.original")


CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}


def bench_train(
    run: RunConfig, density: float, steps: int, rounds: int, clock: str = "cpu"
) -> pd.DataFrame:
    """Seconds per training step of every variant, ``rounds`` interleaved rounds of ``steps``."""
    now = CLOCKS[clock]
    variants = {
        "nn.Linear": _variant(run, 1.0, "plain"),
        "ours, density 1": _variant(run, 1.0, None),
        f"ours, density {density:g}": _variant(run, density, None),
        f"parametrize, density {density:g}": _variant(run, density, "parametrize"),
    }
    for step in variants.values():  # warm-up
        step()
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    load_start = load_average()
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = now()
            for _ in range(steps):
                variants[name]()
            times[name].append((now() - start) / steps)
    context = {
        "width": run.model.width,
        "depth": run.model.depth,
        "batch": run.data.batch_size,
        "seq_len": run.data.seq_len,
        "rounds": rounds,
        "steps_per_round": steps,
        "clock": clock,
        "device": bench_device("cpu"),
        "threads": torch.get_num_threads(),
        "load_start": load_start,
        "load_end": load_average(),
    }
    rows = [_summary(name, t, times["nn.Linear"]) | context for name, t in times.items()]
    return pd.DataFrame(rows)


def _summary(name: str, seconds: list[float], baseline: list[float]) -> dict[str, object]:
    """Median steps/s, and the per-round ratios against the baseline: median and spread."""
    ratios = [base / t for base, t in zip(baseline, seconds, strict=True)]
    one = len(ratios) == 1
    q1, _, q3 = (ratios * 3) if one else statistics.quantiles(ratios, n=4, method="inclusive")
    return {
        "variant": name,
        "steps_per_s": 1 / statistics.median(seconds),
        "ratio_vs_nn_linear": statistics.median(ratios),
        "ratio_q1": q1,
        "ratio_q3": q3,
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def format_table(table: pd.DataFrame) -> str:
    """Steps/s and the ratio to nn.Linear with its interquartile range and full range."""
    lines = [f"{'variant':<26} {'steps/s':>8}  ratio  IQR          min–max"]
    for row in table.itertuples():
        lines.append(
            f"{row.variant:<26} {row.steps_per_s:8.3f}  {row.ratio_vs_nn_linear:.3f}"
            f"  {row.ratio_q1:.3f}–{row.ratio_q3:.3f}  {row.ratio_min:.3f}–{row.ratio_max:.3f}"
        )
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="GPT training steps/s: ours vs nn.Linear")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--density", type=float, default=0.125)
    parser.add_argument(
        "--steps", type=positive_int, default=1, help="steps per variant and round (default: 1)"
    )
    parser.add_argument(
        "--rounds", type=positive_int, default=30, help="interleaved rounds (default: 30)"
    )
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="cpu",
        help="cpu: the process's CPU time (default; robust to a loaded machine), or wall time",
    )
    add_out_folder(parser, "train.parquet")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    config = RunConfig(
        model=ModelConfig(
            width=args.width,
            depth=args.depth,
            heads=4,
            context=args.seq_len,
            input_size=256,
            output_size=256,
        ),
        data=DataConfig(batch_size=args.batch_size, seq_len=args.seq_len),
        base=BaseShape(width=args.width),
    )
    table = bench_train(config, args.density, args.steps, args.rounds, args.clock)
    print(
        f"GPT width {args.width}, depth {args.depth}, batch {args.batch_size}×{args.seq_len}, "
        f"{args.threads} thread(s) on {table['device'][0]}; median of {args.rounds} interleaved "
        f"rounds of {args.steps} steps, {args.clock} time; load average "
        f"{table['load_start'][0]:.2f} → {table['load_end'][0]:.2f}"
    )
    print(format_table(table))
    args.out.mkdir(parents=True, exist_ok=True)
    write_frame(args.out / "train.parquet", table)
    print(f"wrote {args.out / 'train.parquet'}")
    return 0
