"""``hptransfer bench kernels``: the masked linear's kernels against dense and unfused baselines.

Times, forward and forward+backward, for a square ``d × d`` layer over ``tokens`` rows:

- ``dense``: ``F.linear(x, W)``, the cuBLAS/MKL ceiling (no mask);
- ``unfused``: ``F.linear(x, W * M)``, SμPar's reference (an extra weight-sized pass and tensor);
- ``torch-masked``: this package's torch path (plain GEMM on the zero-stored weight, masked dW);
- ``triton-fused``: the Triton kernel with the mask applied as weight tiles load (GPU only);
- ``triton-block``: the Triton block-sparse kernel over non-empty blocks only (GPU only).

One block mask per density serves every method, so all compute the same function. Timings are
medians after warm-up: ``triton.testing.do_bench`` on a GPU, ``torch.utils.benchmark`` on a CPU,
where only the torch paths run (Triton's interpreter measures correctness, not speed).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from hptransfer.bench import (
    add_out_folder,
    bench_device,
    load_average,
    numbers,
    positive_int,
    positive_ints,
    save_png,
    subplots,
)
from hptransfer.config import BLOCK_SIZES, parse_fraction
from hptransfer.kernels.block_layout import block_layout
from hptransfer.kernels.torch_masked import torch_masked_linear
from hptransfer.models.sparse import draw_mask
from hptransfer.store import write_frame

SIZES = (1024, 4096, 8192)
TOKENS = (4096, 16384)
DENSITIES = (1.0, 1 / 2, 1 / 4, 1 / 8, 1 / 16)
QUICK = {"sizes": (1024,), "tokens": (4096,)}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
TORCH_METHODS = ("dense", "unfused", "torch-masked")
TRITON_METHODS = ("triton-fused", "triton-block")
PASSES = ("fwd", "fwd+bwd")


@dataclass(frozen=True)
class BenchSpec:
    """What to time; ``dtype`` None means bf16 on a GPU, fp32 on a CPU."""

    sizes: tuple[int, ...] = SIZES
    tokens: tuple[int, ...] = TOKENS
    densities: tuple[float, ...] = DENSITIES
    block: int = 64
    dtype: str | None = None
    min_run_time: float = 1.0  # seconds per CPU case, split over the rounds
    rounds: int = 1


def _methods(device: torch.device) -> dict[str, Callable]:
    """Each method as ``f(x, weight, mask, layout) -> y``."""
    methods: dict[str, Callable] = {
        "dense": lambda x, w, m, lay: F.linear(x, w),
        "unfused": lambda x, w, m, lay: F.linear(x, w * m),
        "torch-masked": lambda x, w, m, lay: torch_masked_linear(x, w, m),
    }
    if device.type == "cuda":
        from hptransfer.kernels import triton_kernels

        fused = triton_kernels().triton_masked_linear
        methods["triton-fused"] = lambda x, w, m, lay: fused(x, w, m)
        methods["triton-block"] = lambda x, w, m, lay: fused(x, w, m, layout=lay)
    return methods


def _median_ms(fn: Callable[[], object], device: torch.device, min_run_time: float) -> float:
    if device.type == "cuda":
        from triton.testing import do_bench

        return float(do_bench(fn, return_mode="median"))
    from torch.utils import benchmark

    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median * 1e3


def _step(method, x, w, m, layout, pass_: str) -> Callable[[], object]:
    """One forward (no autograd graph) or one forward+backward (grads of x and W)."""
    if pass_ == "fwd":

        def step() -> object:
            with torch.no_grad():
                return method(x, w, m, layout)

        return step
    grad = torch.randn(x.shape[0], w.shape[0], device=x.device, dtype=x.dtype)
    leaves = (x.detach().requires_grad_(), w.detach().requires_grad_())
    return lambda: torch.autograd.grad(method(*leaves, m, layout), leaves, grad)


def _cases(d: int, tokens: int, spec: BenchSpec, methods: dict[str, Callable], device, dtype):
    """(row, step) for the dense baseline and every density × masked method × pass."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, d, generator=gen).to(device, dtype)
    w = (torch.randn(d, d, generator=gen) / d**0.5).to(device, dtype)
    for pass_ in PASSES:  # the dense baseline has no mask and no density
        yield (
            {"density": float("nan"), "method": "dense", "pass": pass_},
            _step(methods["dense"], x, w, None, None, pass_),
        )
    for density in spec.densities:
        mask = draw_mask(d, d, density, kind="block", block=spec.block, generator=gen).to(device)
        layout = block_layout(mask, spec.block)
        wm = w * mask  # the layer's invariant: masked weights stored as zeros
        for name in [n for n in methods if n != "dense"]:
            for pass_ in PASSES:
                yield (
                    {"density": density, "method": name, "pass": pass_},
                    _step(methods[name], x, wm, mask, layout, pass_),
                )


def bench_kernels(spec: BenchSpec, device: torch.device) -> pd.DataFrame:
    """Median times of every method, pass, size and density, as a tidy table.

    Cases are measured in ``spec.rounds`` interleaved rounds and the median round is kept, so
    load that comes and goes (a shared CPU) hits every method alike.
    """
    dtype = DTYPES[spec.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    methods = _methods(device)
    rows = []
    for d in spec.sizes:
        for tokens in spec.tokens:
            cases = list(_cases(d, tokens, spec, methods, device, dtype))
            times: list[list[float]] = [[] for _ in cases]
            loads: list[list[float]] = [[] for _ in cases]
            for _ in range(spec.rounds):
                for (_, step), case_times, case_loads in zip(cases, times, loads, strict=True):
                    case_times.append(_median_ms(step, device, spec.min_run_time / spec.rounds))
                    case_loads.append(load_average())
            rows += [
                {
                    "d": d,
                    "tokens": tokens,
                    **row,
                    "ms": statistics.median(case_times),
                    "load_avg_1min": statistics.median(case_loads),
                }
                for (row, _), case_times, case_loads in zip(cases, times, loads, strict=True)
            ]
    return _derived_columns(pd.DataFrame(rows), device, dtype, spec.block)


def _derived_columns(frame: pd.DataFrame, device, dtype, block: int) -> pd.DataFrame:
    flops = 2 * frame["tokens"] * frame["d"] ** 2 * frame["pass"].map({"fwd": 1, "fwd+bwd": 3})
    frame["dense_equiv_tflops"] = flops / (frame["ms"] * 1e-3) / 1e12
    keys = ["d", "tokens", "pass"]
    dense = frame.loc[frame["method"] == "dense", [*keys, "ms"]].rename(columns={"ms": "dense_ms"})
    frame = frame.merge(dense, on=keys, how="left")
    frame["speedup_vs_dense"] = frame.pop("dense_ms") / frame["ms"]
    frame.insert(0, "device", bench_device(str(device)))
    frame.insert(1, "dtype", str(dtype).removeprefix("torch."))
    frame.insert(2, "block", block)
    return frame


def target_checks(frame: pd.DataFrame) -> list[str]:
    """The issue's GPU targets (d = 4096, 16k tokens, 64-blocks), for the rows present."""
    at = frame[(frame["d"] == 4096) & (frame["tokens"] == 16384) & (frame["pass"] == "fwd+bwd")]
    lines = []

    def ms(method: str, density: float | None) -> float | None:
        rows = at[at["method"] == method]
        if density is not None:
            rows = rows[rows["density"] == density]
        return float(rows["ms"].iloc[0]) if len(rows) else None

    dense, fused = ms("dense", None), ms("triton-fused", 1 / 8)
    unfused, block = ms("unfused", 1 / 8), ms("triton-block", 1 / 8)
    if dense and fused:
        lines.append(f"fused fwd+bwd throughput vs dense: {dense / fused:.2f}x (target >= 0.9x)")
    if unfused and fused:
        lines.append(f"fused fwd+bwd speedup vs unfused: {unfused / fused:.2f}x (target >= 1.1x)")
    if dense and block and frame["block"].iloc[0] == 64:
        lines.append(
            f"block-sparse (density 1/8) speedup vs dense: {dense / block:.2f}x (target >= 4x)"
        )
    return lines


def format_table(frame: pd.DataFrame) -> str:
    """Median ms per method (columns), one row per shape, density and pass."""
    shown = frame.assign(density=frame["density"].map(lambda r: "-" if pd.isna(r) else f"{r:g}"))
    table = shown.pivot_table(
        index=["d", "tokens", "pass", "density"], columns="method", values="ms", sort=False
    )
    return table.to_string(float_format=lambda v: f"{v:9.2f}", na_rep="")


def plot(frame: pd.DataFrame, path: Path) -> None:
    """Speed-up over dense against density, one panel per shape and pass."""
    shapes = frame[["d", "tokens"]].drop_duplicates().itertuples(index=False)
    shapes = list(shapes)
    fig, axes = subplots(
        len(shapes), len(PASSES), squeeze=False, figsize=(5 * len(PASSES), 3.2 * len(shapes))
    )
    for (d, tokens), row_axes in zip(shapes, axes, strict=True):
        for pass_, ax in zip(PASSES, row_axes, strict=True):
            part = frame[
                (frame["d"] == d)
                & (frame["tokens"] == tokens)
                & (frame["pass"] == pass_)
                & (frame["method"] != "dense")
            ]
            for method, rows in part.groupby("method", sort=False):
                ax.plot(rows["density"], rows["speedup_vs_dense"], marker="o", label=method)
            ax.axhline(1.0, color="grey", lw=0.8, ls="--")
            ax.set_xscale("log", base=2)
            ax.set_xticks(list(part["density"].unique()))
            ax.set_xticklabels(
                [f"1/{round(1 / r)}" if r < 1 else "1" for r in part["density"].unique()]
            )
            ax.set_title(f"d={d}, tokens={tokens}, {pass_}", fontsize=9)
            ax.set_xlabel("density")
            ax.set_ylabel("speed-up vs dense F.linear")
            ax.legend(fontsize=7)
    fig.suptitle(f"masked linear, {frame['dtype'].iloc[0]}, {frame['device'].iloc[0]}", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(fig, path)


# ----------------------------------------------------------------------------- command line


def _densities(text: str) -> tuple[float, ...]:
    expected, invalid = "densities like 1,1/2,0.25", "densities must be in (0, 1]"
    return numbers(text, parse_fraction, expected, lambda v: 0 < v <= 1, invalid)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "kernels",
        help="time the masked-linear kernels against dense and unfused baselines",
        description="Time the masked-linear kernels against dense F.linear and F.linear(x, W*M).",
    )
    parser.add_argument(
        "--sizes",
        type=positive_ints,
        default=SIZES,
        metavar="D,...",
        help="layer widths d (default: 1024,4096,8192)",
    )
    parser.add_argument(
        "--tokens",
        type=positive_ints,
        default=TOKENS,
        metavar="T,...",
        help="rows of x (default: 4096,16384)",
    )
    parser.add_argument(
        "--densities",
        type=_densities,
        default=DENSITIES,
        metavar="R,...",
        help="mask densities (default: 1,1/2,1/4,1/8,1/16)",
    )
    parser.add_argument(
        "--block", type=int, choices=BLOCK_SIZES, default=64, help="mask block size (default: 64)"
    )
    parser.add_argument(
        "--dtype", choices=tuple(DTYPES), default=None, help="default: bf16 on a GPU, fp32 on a CPU"
    )
    parser.add_argument(
        "--quick", action="store_true", help="only d=1024 and 4096 tokens (CPU-sized)"
    )
    parser.add_argument(
        "--min-run-time",
        type=float,
        default=1.0,
        help="seconds per CPU case, split over the rounds (default: 1)",
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=None,
        help="interleaved rounds, median kept (default: 5 on a CPU, 1 on a GPU)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads for torch (default: torch's own choice)",
    )
    add_out_folder(parser, "kernels.parquet", "kernels.png")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    spec = BenchSpec(
        sizes=QUICK["sizes"] if args.quick else args.sizes,
        tokens=QUICK["tokens"] if args.quick else args.tokens,
        densities=args.densities,
        block=args.block,
        dtype=args.dtype,
        min_run_time=args.min_run_time,
        rounds=args.rounds if args.rounds is not None else (1 if device.type == "cuda" else 5),
    )
    print(f"device: {bench_device(str(device))}; load average {load_average():.2f}")
    if device.type != "cuda":
        print(
            "no GPU: timing the torch paths only (Triton kernels need a GPU to be timed; "
            "GPU figures: unmeasured)"
        )
    frame = bench_kernels(spec, device)
    print(format_table(frame))
    for line in target_checks(frame):
        print(line)
    args.out.mkdir(parents=True, exist_ok=True)
    write_frame(args.out / "kernels.parquet", frame)
    plot(frame, args.out / "kernels.png")
    print(f"wrote {args.out / 'kernels.parquet'} and {args.out / 'kernels.png'}")
    return 0
