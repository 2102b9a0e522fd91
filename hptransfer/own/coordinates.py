"""The coordinate check of a user's model: is each layer's activation size flat in width and
density under the parameterization?

The same measurement, records and report as ``hptransfer coord-check``
(:mod:`hptransfer.coord_check`): a few constant-LR steps at each width (density 1) and each
density (at the largest width), per parameterization and seed; long-format rows, one per
(parameterization, width, density, depth, seed, step, layer, metric); Parquet and figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from hptransfer.adapt.parametrize import parametrize
from hptransfer.adapt.table import build_optimizer
from hptransfer.coord_check import (
    Loss,
    _rows,
    block_grouping,
    probed_layers,
    record_steps,
    write_report,
)
from hptransfer.errors import ConfigError

Batches = Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]
Progress = Callable[[int, int, str], None]


def logits_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the model's logits (a tensor, or a transformers output's ``logits``)
    against ``y``: next-token targets (B, T) or classes (B,)."""
    out = model(x)
    logits = getattr(out, "logits", out)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def coord_check(
    build: Callable[[int], nn.Module],
    widths: Sequence[int],
    densities: Sequence[float] = (1.0,),
    data: Batches | None = None,
    *,
    parameterizations: Iterable[str] = ("sp", "supar"),
    steps: int = 10,
    seeds: Iterable[int] = (0,),
    hps: Mapping[str, float] | None = None,
    density_width: int | None = None,
    loss: Loss = logits_loss,
    out: Path | str | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Train ``build(width)`` for ``steps`` Adam steps at every width of ``widths`` (dense;
    the first is the base) and every density of ``densities`` (at ``density_width``, default
    the largest width), under each parameterization and seed; return the records, and with
    ``out`` write them and the figures there, as ``hptransfer coord-check`` does.

    ``data(generator)`` returns one (inputs, targets) batch; ``options`` go to
    :func:`~hptransfer.own.parametrize` (``zero_readout``, ``mask``, ``blocks``, …).
    """
    if data is None:
        raise ConfigError("coord_check needs data: a function of a generator giving (x, y)")
    widths = list(widths)
    if len(widths) < 2 and len(densities) < 2:
        raise ConfigError("coord_check needs two widths or two densities to compare")
    wide = density_width or max(widths)
    shapes = sorted({(w, 1.0) for w in widths} | {(wide, float(d)) for d in densities})
    runs = [(p, w, d, s) for p in parameterizations for w, d in shapes for s in seeds]
    records = []
    for i, (p, width, density, seed) in enumerate(runs, 1):
        if progress is not None:
            progress(i, len(runs), f"{p} width {width} density {density:g} seed {seed}")
        records.extend(
            _check(build, widths, p, width, density, seed, data, steps, hps, loss, options)
        )
    frame = pd.DataFrame(records)
    if out is not None:
        write_report(frame, Path(out), wide, widths[0], int(frame["depth"].iloc[0]))
    return frame


def _check(
    build: Callable[[int], nn.Module],
    widths: list[int],
    p: str,
    width: int,
    density: float,
    seed: int,
    data: Batches,
    steps: int,
    hps: Mapping[str, float] | None,
    loss: Loss,
    options: Mapping[str, Any],
) -> list[dict[str, object]]:
    """One run of the check: parametrize the model at (width, density), train, record."""
    base, other = widths[0], next((w for w in widths if w != widths[0]), widths[0] * 2)
    torch.manual_seed(seed)
    model = build(width)
    table = parametrize(
        model,
        base=lambda: build(base),
        delta=(lambda: build(other)) if width == base else None,
        parameterization=p,
        density=density,
        hps=hps,
        seed=seed,
        **options,
    )
    generator = torch.Generator().manual_seed(seed)
    batches = (data(generator) for _ in range(steps))
    layers = probed_layers(model, table.blocks)
    labels = {
        "parameterization": table.parameterization,
        "width": width,
        "density": density,
        "depth": table.depth or 0,
        "seed": seed,
    }
    group = block_grouping(table.blocks)
    recorded = record_steps(model, build_optimizer(model), layers, batches, loss)
    return [row for step, values in recorded for row in _rows(labels, step, values, group)]
