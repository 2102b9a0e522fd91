"""Optimizers built from the resolved per-parameter HPs, and relative LR schedules.

Parameters with equal (lr, weight decay, ε) share a group. Schedules are ``LambdaLR``
factors: every group's LR is its own initial LR times the same factor, so the per-group
μP/SμPar multipliers survive warmup and decay (scaling absolute LRs would erase them).
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch import nn

from hptransfer.config import TrainConfig
from hptransfer.param import ParamHP


def param_groups(model: nn.Module, plans: list[ParamHP]) -> list[dict]:
    """One optimizer group per distinct (lr, weight_decay, eps); every parameter exactly once."""
    return group_parameters(dict(model.named_parameters()), plans)


def group_parameters(params: dict[str, nn.Parameter], plans: list[ParamHP]) -> list[dict]:
    """:func:`param_groups` of the tensors ``params`` names (the plans' names)."""
    if {p.name for p in plans} != params.keys():
        raise AssertionError("the HP plan and the model's parameters disagree")
    grouped: dict[tuple[float, float, float], list[str]] = defaultdict(list)
    for plan in plans:
        grouped[(plan.lr, plan.weight_decay, plan.eps)].append(plan.name)
    return [
        {
            "params": [params[n] for n in names],
            "names": names,
            "lr": lr,
            "weight_decay": wd,
            "eps": eps,
        }
        for (lr, wd, eps), names in grouped.items()
    ]


def build_optimizer(
    model: nn.Module, plans: list[ParamHP], train: TrainConfig
) -> torch.optim.Optimizer:
    groups = param_groups(model, plans)
    if train.optimizer == "sgd":
        for group in groups:
            del group["eps"]
        return torch.optim.SGD(groups, lr=groups[0]["lr"], momentum=train.momentum)
    optimizer_cls = torch.optim.AdamW if train.optimizer == "adamw" else torch.optim.Adam
    return optimizer_cls(groups, lr=groups[0]["lr"], betas=train.betas)


def lr_factor_at(step: int, train: TrainConfig) -> float:
    """The schedule's factor at ``step`` (0-based): linear warmup, then cosine/linear/constant."""
    if step < train.warmup_steps:
        return (step + 1) / train.warmup_steps
    if train.schedule == "constant":
        return 1.0
    span = max(1, train.steps - train.warmup_steps)
    progress = min(1.0, (step - train.warmup_steps) / span)
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if train.schedule == "cosine" else 1 - progress
    return train.final_lr_ratio + (1 - train.final_lr_ratio) * shape


def build_schedule(
    optimizer: torch.optim.Optimizer, train: TrainConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor_at(step, train))
