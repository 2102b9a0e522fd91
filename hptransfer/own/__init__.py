"""SP, μP, SμPar and CompleteP on your own ``nn.Module`` (a Hugging Face model, your own code).

    import hptransfer.own as hpo

    model = build(width=256)                      # the model you will train
    hpo.parametrize(
        model,
        base=lambda: build(width=64),             # the base (proxy) shape, built on meta
        delta=lambda: build(width=128),           # needed only when model has the base shape
        parameterization="supar",
        density=0.25,
        hps={"lr": 2**-7, "init_std": 0.02},
    )
    optimizer = hpo.build_optimizer(model)        # or torch.optim.AdamW(hpo.param_groups(model))
    hpo.describe(model)                           # the per-parameter table of `hptransfer plan`

What :func:`parametrize` does, in place:

- **Roles** from the shapes of two builds at two widths, read against each layer's weight
  layout (``nn.Linear`` (out, in), ``nn.Embedding`` (num, dim), GPT-2's ``Conv1D`` (in, out),
  convolutions): fan-in and fan-out grow → hidden; fan-in only → readout; fan-out only →
  embedding; 1-D → vector. A tied embedding is one tensor with the embedding's role; the
  readout's multiplier still applies where a module uses it as the output layer.
  ``roles={"pattern": "embedding" | "hidden" | "readout" | "vector" | "residual"}`` overrides
  by name pattern (``fnmatch``; a tied tensor answers to each of its names). A model whose
  roles the shapes cannot decide is refused, naming the parameters and the override to give.
- **Init** by the rules: every matrix is drawn again (``seed``: a fixed draw); vectors keep
  the values they were built with (their init is SP's under every parameterization).
- **Forward multipliers** as forward hooks on the modules (embedding α_in, readout α_out/m_d,
  residual branch m_L^(−α) on each block's output projections), never where they equal 1.
- **Attention**: a module with a float ``scaling`` attribute (transformers' families; your
  own attention by the same convention, see :func:`scaled_dot_product_attention`) gets
  μP's logit scale √d₀/d_head (d₀ from the base build's module); any other module whose
  class is named like attention is listed in a warning.
- **Sparsity** at ``density`` < 1: every hidden ``nn.Linear`` becomes the project's
  :class:`~hptransfer.models.MaskedLinear` (GPT-2's ``Conv1D`` a masked twin): a static random
  mask per layer, saved in the ``state_dict``, masked weights exactly zero.
- **Depth** (``parameterization="supar+completep"``): the blocks named by ``blocks=`` (a
  pattern) or found (the one ``nn.ModuleList`` of identical modules) are the residual blocks;
  m_L = their count / the base build's. Residual output projections (in each module of a
  block, the last hidden matrix of fan-out = width) keep GPT-2's 1/√(2·depth) init without
  depth rules and carry the branch multiplier with them.
- :func:`coord_check` trains a few steps at several widths and densities and writes the
  same Parquet and figures as ``hptransfer coord-check``: flat lines, a correct model.
- :func:`from_fit` does all of it with the base HPs a fitted proxy sweep found (``fit.json``),
  moved to the target's budget, and returns the optimizer groups and LR-schedule factor.
- The table of it all is kept off the tensors, keyed by name (:class:`OwnTable`), so it
  survives ``torch.compile``, DDP, FSDP2's ``fully_shard`` and a ``state_dict`` round trip.
"""

from __future__ import annotations

import sys
from typing import TextIO

import torch
import torch.nn.functional as F
from torch import nn

from hptransfer.adapt.parametrize import parametrize
from hptransfer.adapt.table import (
    OwnTable,
    build_optimizer,
    forward_line,
    header,
    param_groups,
    table_of,
)
from hptransfer.own.coordinates import coord_check
from hptransfer.own.fitted import Recipe, from_fit


def plan_rows(model: nn.Module) -> list[dict[str, object]]:
    """The rows of ``hptransfer plan``'s table for a parametrized model."""
    return [row.table_row() for row in table_of(model).rows]


def describe(model: nn.Module, file: TextIO | None = None) -> None:
    """Print the parameterization, the forward multipliers and the per-parameter table,
    laid out as ``hptransfer plan`` prints them."""
    from hptransfer.plan import format_table

    table = table_of(model)
    out = file or sys.stdout
    print(header(table), file=out)
    print(forward_line(table), file=out)
    print(format_table(plan_rows(model)), file=out)


def scaled_dot_product_attention(
    module: nn.Module, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs
) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` at ``module.scaling`` (the logit scale parametrize
    set; 1/√d_head before). Give your attention module ``self.scaling = head_dim ** -0.5``
    (and ``self.head_dim``) and call this, or pass ``scale=self.scaling`` yourself."""
    return F.scaled_dot_product_attention(q, k, v, scale=module.scaling, **kwargs)


__all__ = [
    "OwnTable",
    "Recipe",
    "build_optimizer",
    "coord_check",
    "describe",
    "from_fit",
    "param_groups",
    "parametrize",
    "plan_rows",
    "scaled_dot_product_attention",
    "table_of",
]
