"""The coordinate check: train a few steps at several widths, densities and depths and
record, per layer and step, the mean |x| of activations, weight gradients, weight updates and
output updates (how much one step moves a layer's output on the same batch).

Under a correct parameterization each activation curve is flat in width and in density
(``docs/parameterizations.md#what-the-papers-report``); under depth rules (CompleteP) the residual
stream's activations and output updates are flat in depth too. Records are long-format rows, one per
(parameterization, width, density, depth, seed, step, layer, metric), ready for a DataFrame and
Parquet.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from hptransfer.adapt import build_model, plan_parameters
from hptransfer.adapt.table import table_of
from hptransfer.analysis.coord_plot import activation_table, plot_coord_check, spread
from hptransfer.config import RunConfig
from hptransfer.data import load_dataset
from hptransfer.errors import ConfigError
from hptransfer.optim import build_optimizer
from hptransfer.param import parameterization
from hptransfer.store import write_frame
from hptransfer.store.folder import COORD_CHECK_FILE
from hptransfer.train import complete_run, loss_fn

METRICS = ("activation", "gradient", "update", "output_update")
_BLOCK_INDEX = re.compile(r"^(blocks|hidden)\.\d+\.?")


def layer_group(layer: str) -> str:
    """``blocks.3.attn.qkv`` -> ``attn.qkv``; ``hidden.2`` -> ``hidden``."""
    return (
        _BLOCK_INDEX.sub(lambda m: "" if m.group(0).endswith(".") else m.group(1), layer) or layer
    )


def probed_layers(model: nn.Module, blocks: Collection[str] = ()) -> dict[str, nn.Module]:
    """The modules whose outputs are measured: every linear/embedding and each block (the
    modules named ``blocks``, else ``blocks.<i>``)."""
    layers = {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, (nn.Linear, nn.Embedding))
        or name in blocks
        or (not blocks and re.fullmatch(r"blocks\.\d+", name))
    }
    layers["logits"] = model
    return layers


def _tensor(output: object) -> torch.Tensor:
    """A module's output tensor: itself, a tuple's first, a transformers output's logits."""
    if isinstance(output, (tuple, list)):
        return output[0]
    return getattr(output, "logits", output)


@contextmanager
def _record_outputs(layers: dict[str, nn.Module], sink: dict[str, torch.Tensor]) -> Iterator[None]:
    def hook(name: str) -> Callable:
        def record(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            sink[name] = _tensor(output).detach().clone()

        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in layers.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _weights(model: nn.Module, layers: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    return {
        name: module.weight
        for name, module in layers.items()
        if isinstance(getattr(module, "weight", None), torch.Tensor)
    }


def check_run(run: RunConfig) -> list[dict[str, object]]:
    """Train ``run`` for its ``train.steps`` steps and record every metric at every step.
    A run with the user's ``train.fn`` is refused: the check takes its own steps."""
    if run.train.kind == "python":
        raise ConfigError(
            f"coord-check takes its own steps (constant LR, a hook on every layer): train.fn "
            f"{run.train.fn!r} would not be called; give the run without it (train.kind builtin)"
        )
    dataset = load_dataset(run.data)
    run = complete_run(run, dataset)
    model = build_model(run)
    optimizer = build_optimizer(model, plan_parameters(model, run), run.train)
    generator = torch.Generator().manual_seed(run.seed)
    batches = (
        dataset.train_batch(run.data.batch_size, run.data.seq_len, generator)
        for _ in range(run.train.steps)
    )
    labels = {
        "parameterization": run.parameterization,
        "width": run.model.width,
        "density": run.model.density,
        "depth": run.model.depth,
        "seed": run.seed,
    }
    blocks, group = (), layer_group
    if run.model.kind == "python":
        blocks = table_of(model).blocks
        group = block_grouping(blocks)
    steps = record_steps(model, optimizer, probed_layers(model, blocks), batches, loss_fn)
    return [row for step, values in steps for row in _rows(labels, step, values, group)]


def block_grouping(blocks: Sequence[str]) -> Callable[[str], str]:
    """Layer → group for a model whose blocks are ``blocks``: a layer inside a block without
    the block's name (``self_attn.q_proj``), each block's output ``blocks`` (the residual
    stream), anything else its own name."""

    def group(layer: str) -> str:
        for block in blocks:
            if layer == block:
                return "blocks"
            if layer.startswith(f"{block}."):
                return layer[len(block) + 1 :]
        return layer

    return group


Loss = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def record_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    layers: dict[str, nn.Module],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss_of: Loss,
) -> Iterator[tuple[int, dict[str, dict[str, float]]]]:
    """One optimizer step per batch; yields (step, metric → layer → mean |x|) for each."""
    weights = _weights(model, layers)
    for step, (x, y) in enumerate(batches, 1):
        outputs: dict[str, torch.Tensor] = {}
        with _record_outputs(layers, outputs):
            loss = loss_of(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        before = {name: w.detach().clone() for name, w in weights.items()}
        optimizer.step()
        after: dict[str, torch.Tensor] = {}
        with torch.no_grad(), _record_outputs(layers, after):
            model(x)
        yield (
            step,
            {
                "activation": {n: out.abs().mean().item() for n, out in outputs.items()},
                "gradient": {n: w.grad.abs().mean().item() for n, w in weights.items()},
                "update": {
                    n: (w.detach() - before[n]).abs().mean().item() for n, w in weights.items()
                },
                "output_update": {
                    n: (after[n] - out).abs().mean().item() for n, out in outputs.items()
                },
            },
        )


def _rows(
    labels: dict[str, object],
    step: int,
    values: dict[str, dict[str, float]],
    group: Callable[[str], str] = layer_group,
) -> Iterator[dict]:
    """Long-format rows: ``labels`` (parameterization, width, density, depth, seed), then
    step, layer, its group, metric and value."""
    for metric, per_layer in values.items():
        for layer, value in per_layer.items():
            yield {
                **labels,
                "step": step,
                "layer": layer,
                "group": group(layer),
                "metric": metric,
                "value": value,
            }


def coord_check_runs(
    base: RunConfig,
    parameterizations: Iterable[str],
    widths: Iterable[int],
    densities: Iterable[float],
    seeds: Iterable[int],
    density_width: int,
    depths: Iterable[int] = (),
) -> list[RunConfig]:
    """Width sweep at density 1 and density sweep at ``density_width``, per parameterization,
    at the base run's depth; with ``depths``, a depth sweep at the base width and density 1
    too (the base run's depth is then the base depth of m_L).

    Sweep density at a large width: what matters for a sparse layer is its non-zero fan-in
    (density × width); when that is only a handful, finite-size noise dominates the updates.

    Training is a plain constant-LR Adam-family run with no warmup and no clipping, so the
    measured sizes reflect the parameterization alone.
    """
    train = dataclasses.replace(base.train, warmup_steps=0, schedule="constant", grad_clip=None)
    # Heads stay fixed, so d_head grows with width: the case μP's 1/d_head attention is for.
    depth = base.model.depth
    shapes = {(w, 1.0, depth) for w in widths} | {(density_width, d, depth) for d in densities}
    shapes |= {(base.model.width, 1.0, n) for n in depths}
    base_shape = dataclasses.replace(base.base, depth=depth)  # m_L = n / depth
    return [
        dataclasses.replace(
            base,
            parameterization=p,
            seed=seed,
            train=train,
            model=base.model.replace(width=w, density=d, depth=n),
            base=base_shape,
        )
        for p in parameterizations
        for w, d, n in sorted(shapes)
        for seed in seeds
    ]


Progress = Callable[[int, int, RunConfig], None]


def measure(runs: list[RunConfig], progress: Progress | None = None) -> pd.DataFrame:
    """Train every run of the check; ``progress(i, n, run)`` is called before run ``i``."""
    rows: list[dict[str, object]] = []
    for i, run in enumerate(runs, 1):
        if progress is not None:
            progress(i, len(runs), run)
        rows.extend(check_run(run))
    return pd.DataFrame(rows)


def write_report(
    records: pd.DataFrame, out: Path, density_width: int, base_width: int, base_depth: int
) -> pd.DataFrame:
    """Write the records' Parquet and one figure per axis swept under ``out`` (for depth,
    also one of the output updates); return the largest max/min ratio per (parameterization,
    axis) over layer groups and steps: of activations, and for depth of output updates too."""
    out.mkdir(parents=True, exist_ok=True)
    write_frame(out / COORD_CHECK_FILE, records)
    slices = {
        "width": {"density": 1.0, "depth": base_depth},
        "density": {"width": density_width, "depth": base_depth},
        "depth": {"width": base_width, "density": 1.0},
    }
    slices = {axis: fixed for axis, fixed in slices.items() if records[axis].nunique() > 1}
    summaries = []
    for metric in ("activation", "output_update"):
        table = activation_table(records, metric)
        for axis, fixed in slices.items():
            if metric == "activation" or axis == "depth":
                name = axis if metric == "activation" else f"{axis}_{metric}"
                plot_coord_check(table, axis, fixed, out / f"coord_check_{name}.png", metric)
                summaries.append(spread(table, axis, fixed).assign(axis=name))
    summary = pd.concat(summaries)
    return summary.groupby(["parameterization", "axis"], sort=False)["spread"].max().unstack()


def coord_check(
    base: RunConfig,
    parameterizations: Sequence[str],
    widths: Sequence[int],
    densities: Sequence[float],
    seeds: Sequence[int],
    out: Path,
    depths: Sequence[int] = (),
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The whole ``hptransfer coord-check``: the runs of :func:`coord_check_runs` (the first
    width the base, the density sweep at the largest), trained and measured, their records and
    figures written under ``out``; returns :func:`write_report`'s largest ratios."""
    for name in parameterizations:
        parameterization(name)
    runs = coord_check_runs(
        base, parameterizations, widths, densities, seeds, density_width=max(widths), depths=depths
    )
    records = measure(runs, progress)
    return write_report(records, out, max(widths), widths[0], base.model.depth)
