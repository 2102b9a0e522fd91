"""From a fitted proxy sweep to the optimizer of a target trained in your own loop.

:func:`from_fit` reads the sweep's ``fit.json`` (the base HPs at the base shape) and its
``spec.yaml`` (the proxy's budget and optimizer), moves the base HPs to the target's budget by
a budget rule (as ``hptransfer transfer`` does), parametrizes the target model with them and
returns a :class:`Recipe`: the optimizer groups and the LR-schedule factor per step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from hptransfer.adapt.parametrize import Build, base_width, parametrize
from hptransfer.adapt.table import OwnTable, build_optimizer, param_groups
from hptransfer.budget import TargetSpec, at_horizon
from hptransfer.config import TrainConfig
from hptransfer.errors import ConfigError
from hptransfer.optim import lr_factor_at
from hptransfer.param.rules import COMPLETEDP


@dataclass(frozen=True)
class Recipe:
    """How to train the target: its parametrization, optimizer groups (every parameter's
    lr, weight decay, ε), the optimizer settings and budget (``train``: steps, warmup,
    schedule, betas) and the rows per step (``batch_size``)."""

    table: OwnTable
    groups: list[dict]
    train: TrainConfig
    batch_size: int

    def lr_factor(self, step: int) -> float:
        """The schedule's factor at ``step`` (0-based): multiply each group's initial LR."""
        return lr_factor_at(step, self.train)

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """The optimizer on ``model`` (as wrapped now: compiled, DDP, FSDP2)."""
        if self.train.optimizer == "sgd":
            return build_optimizer(model, momentum=self.train.momentum)
        return build_optimizer(model, betas=self.train.betas)

    def scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """A ``LambdaLR`` with :meth:`lr_factor` (step it once per optimizer step)."""
        return torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_factor)


def from_fit(
    model: nn.Module,
    sweep: Path | str,
    base: Build,
    delta: Build | None = None,
    *,
    parameterization: str | None = None,
    density: float = 1.0,
    tokens: int | None = None,
    steps: int | None = None,
    batch: int | None = None,
    budget_rule: str = COMPLETEDP.name,
    **options: object,
) -> Recipe:
    """Parametrize ``model`` (the target) with the base HPs fitted on the proxy sweep
    ``sweep`` (its folder or fit.json), moved to the target's budget (``tokens`` or
    ``steps``, and ``batch``; none: the proxy's) by ``budget_rule``; ``base`` builds the
    model at the fit's base shape. ``options`` go to :func:`~hptransfer.own.parametrize`."""
    from hptransfer.transfer.runs import Request, _target_run
    from hptransfer.transfer.runs import budget_rule as rule_of
    from hptransfer.transfer.source import default_parameterization, load_source

    source = load_source(Path(sweep))
    p = parameterization or default_parameterization(source.fit)
    target = TargetSpec(tokens=tokens, steps=steps, batch=batch)
    rule, line = rule_of(source, Request([target], p, budget_rule=budget_rule))
    proxy = source.proxy_horizon
    cell = source.spec.cells[0]
    template = dataclasses.replace(
        cell, hps=source.fit.base_config(p), train=at_horizon(cell.train, proxy.steps)
    )
    run = _target_run(template, target, proxy, rule, line)
    fitted_base = source.base
    measured = base_width(model, base, delta, options.get("blocks"))
    if measured != fitted_base.width:
        raise ConfigError(
            f"the base build has width {measured}; {source.fit.sweep}'s base HPs were "
            f"fitted at width {fitted_base.width}: build the base at that width"
        )
    train = run.train
    table = parametrize(
        model,
        base,
        delta,
        parameterization=p,
        density=density,
        base_density=fitted_base.density,
        hps=run.hps,
        optimizer=train.optimizer,
        weight_decay_mode=train.weight_decay_mode,
        eps=train.eps,
        scale_eps=train.scale_eps,
        **options,
    )
    return Recipe(table, param_groups(model), train, run.data.batch_size)
