"""``hptransfer bench train``: training steps/s of the GPT, dense and sparse, against baselines.

Variants, all the same shape and the same SμPar HPs:

- ``nn.Linear``: the GPT with every hidden layer swapped for a plain ``nn.Linear``;
- ``ours, density 1``: the model as built (``MaskedLinear`` at density 1);
- ``ours, density ρ``: the torch masked path (zero-stored weights, masked ``dW``);
- ``parametrize, density ρ``: masking by ``torch.nn.utils.parametrize`` (``W ⊙ M`` recomputed
  each step), as in SμPar's reference implementation.

Variants are timed in interleaved rounds and the median per variant is reported, so a busy
machine slows them alike; ratios are against ``nn.Linear`` from the same run.
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

from hptransfer.bench import add_out_folder
from hptransfer.bench.kernels import device_name
from hptransfer.config import BaseShape, DataConfig, ModelConfig, RunConfig
from hptransfer.models import MaskedLinear, build_model, plan_parameters
from hptransfer.optim import build_optimizer
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


def bench_train(run: RunConfig, density: float, steps: int, rounds: int) -> pd.DataFrame:
    variants = {
        "nn.Linear": _variant(run, 1.0, "plain"),
        "ours, density 1": _variant(run, 1.0, None),
        f"ours, density {density:g}": _variant(run, density, None),
        f"parametrize, density {density:g}": _variant(run, density, "parametrize"),
    }
    for step in variants.values():  # warm-up
        step()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, step in variants.items():
            start = time.perf_counter()
            for _ in range(steps):
                step()
            times[name].append((time.perf_counter() - start) / steps)
    base = statistics.median(times["nn.Linear"])
    rows = [
        {
            "variant": name,
            "steps_per_s": 1 / statistics.median(t),
            "ratio_vs_nn_linear": base / statistics.median(t),
            "width": run.model.width,
            "depth": run.model.depth,
            "batch": run.data.batch_size,
            "seq_len": run.data.seq_len,
            "device": device_name(torch.device("cpu")),
            "threads": torch.get_num_threads(),
        }
        for name, t in times.items()
    ]
    return pd.DataFrame(rows)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="GPT training steps/s: ours vs nn.Linear")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--density", type=float, default=0.125)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
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
    table = bench_train(config, args.density, args.steps, args.rounds)
    print(
        f"GPT width {args.width}, depth {args.depth}, batch {args.batch_size}×{args.seq_len}, "
        f"{args.threads} thread(s) on {table['device'][0]}"
    )
    print(table[["variant", "steps_per_s", "ratio_vs_nn_linear"]].round(3).to_string(index=False))
    args.out.mkdir(parents=True, exist_ok=True)
    write_frame(args.out / "train.parquet", table)
    print(f"wrote {args.out / 'train.parquet'}")
    return 0
