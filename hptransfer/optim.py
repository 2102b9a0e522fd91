"""Optimizers built from the resolved per-parameter HPs, and relative LR schedules.

Parameters with equal (optimizer, lr, weight decay, ε) share a group. ``optimizer: muon``
trains the hidden matrices with :class:`torch.optim.Muon` and every other parameter with
AdamW, as one optimizer (:class:`MuonAdamW`) so schedules and checkpoints see one object.
Schedules are ``LambdaLR`` factors: every group's LR is its own initial LR times the same
factor, so the per-group μP/SμPar multipliers survive warmup and decay (scaling absolute
LRs would erase them).
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch import nn

from hptransfer.config import TrainConfig
from hptransfer.param import ParamHP
from hptransfer.param.resolve import MUON


def param_groups(model: nn.Module, plans: list[ParamHP]) -> list[dict]:
    """One optimizer group per distinct (optimizer, lr, weight_decay, eps); every parameter
    exactly once. Muon's groups carry ``"optimizer": "muon"``."""
    return group_parameters(dict(model.named_parameters()), plans)


def group_parameters(params: dict[str, nn.Parameter], plans: list[ParamHP]) -> list[dict]:
    """:func:`param_groups` of the tensors ``params`` names (the plans' names)."""
    if {p.name for p in plans} != params.keys():
        raise AssertionError("the HP plan and the model's parameters disagree")
    grouped: dict[tuple[str | None, float, float, float], list[str]] = defaultdict(list)
    for plan in plans:
        grouped[(plan.optimizer, plan.lr, plan.weight_decay, plan.eps)].append(plan.name)
    return [
        {
            "params": [params[n] for n in names],
            "names": names,
            "lr": lr,
            "weight_decay": wd,
            "eps": eps,
            **({"optimizer": optimizer} if optimizer else {}),
        }
        for (optimizer, lr, wd, eps), names in grouped.items()
    ]


def build_optimizer(
    model: nn.Module, plans: list[ParamHP], train: TrainConfig
) -> torch.optim.Optimizer:
    groups = param_groups(model, plans)
    if train.optimizer == "sgd":
        for group in groups:
            del group["eps"]
        return torch.optim.SGD(groups, lr=groups[0]["lr"], momentum=train.momentum)
    if train.optimizer == MUON:
        masks = sparse_masks(model)
        return MuonAdamW(
            groups,
            betas=train.betas,
            momentum=train.muon_momentum,
            masks=masks,
            rescale=train.muon_masked_update == "rescale",
        )
    optimizer_cls = torch.optim.AdamW if train.optimizer == "adamw" else torch.optim.Adam
    return optimizer_cls(groups, lr=groups[0]["lr"], betas=train.betas, fused=fusable(groups))


def fusable(groups: list[dict]) -> bool:
    """Whether torch's fused Adam kernel can step every parameter of ``groups``: plain tensors
    (FSDP2's DTensors take the default foreach path) on the CPU or a CUDA device. On the CPU it
    is several times faster than foreach, whose ``sqrt`` is ~6× slower on the exact zeros a
    sparse layer's second moment holds under its mask (docs/benchmarks.md)."""
    params = [p for group in groups for p in group["params"]]
    return bool(params) and all(
        type(p.data) is torch.Tensor and p.device.type in ("cpu", "cuda") for p in params
    )


def sparse_masks(model: nn.Module) -> dict[torch.nn.Parameter, torch.Tensor]:
    """Each sparse layer's weight and its static mask (a layer with a ``mask`` buffer, as
    :class:`hptransfer.models.sparse.MaskedLinear` has; optim sits beside models, not above)."""
    return {
        module.weight: module.mask
        for module in model.modules()
        if isinstance(getattr(module, "mask", None), torch.Tensor)
    }


class MuonAdamW(torch.optim.Optimizer):
    """Muon on the groups marked ``"optimizer": "muon"``, AdamW on the others, as one optimizer.

    Both inner optimizers hold this optimizer's own group dicts and state, so an LR schedule,
    ``state_dict`` and ``load_state_dict`` act on one object. Muon's orthogonalized update is
    dense; after each step the sparse weights are re-masked, so a masked entry stays exactly
    zero (the update is the orthogonalized masked momentum times the mask, ``docs/muon.md``).
    With ``rescale`` a sparse Muon weight's masked update is scaled to the spectral norm of
    the dense orthogonalized update it came from (``docs/muon.md`` § Density: orthogonalizing
    a masked momentum inflates its mask-correlated noise, which re-masking makes coherent).
    """

    def __init__(
        self,
        groups: list[dict],
        *,
        betas: tuple[float, float],
        momentum: float,
        masks: dict[torch.nn.Parameter, torch.Tensor],
        rescale: bool = False,
    ) -> None:
        super().__init__(groups, defaults={})
        self._masks, self._rescale = masks, rescale
        self._betas, self._momentum = betas, momentum
        self._link_inner()

    def _link_inner(self) -> None:
        muon = [g for g in self.param_groups if g.get("optimizer") == MUON]
        adamw = [g for g in self.param_groups if g.get("optimizer") != MUON]
        self._muon = torch.optim.Muon(muon, momentum=self._momentum) if muon else None
        self._adamw = (
            torch.optim.AdamW(adamw, betas=self._betas, fused=fusable(adamw)) if adamw else None
        )
        for inner in (self._muon, self._adamw):
            if inner is not None:
                inner.state = self.state  # one state: keys are disjoint parameters

    @torch.no_grad()
    def step(self, closure=None):  # torch's signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        decayed = self._decayed_sparse_muon_weights() if self._rescale else {}
        for inner in (self._muon, self._adamw):
            if inner is not None:
                inner.step()
        for weight, mask in self._masks.items():
            if weight in decayed:
                update = weight - decayed[weight]  # torch's Muon: decay, then add the update
                masked = update * mask
                scale = spectral_norm(update) / spectral_norm(masked).clamp_min(1e-30)
                weight.copy_(decayed[weight] + scale * masked)
            else:
                weight.mul_(mask)
        return loss

    def _decayed_sparse_muon_weights(self) -> dict[torch.nn.Parameter, torch.Tensor]:
        """Each sparse Muon weight as torch's Muon leaves it before adding its update."""
        return {
            weight: weight * (1 - group["lr"] * group["weight_decay"])
            for group in self.param_groups
            if group.get("optimizer") == MUON
            for weight in group["params"]
            if weight in self._masks
        }

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)  # new group dicts and state: re-link the inner ones
        self._link_inner()


def spectral_norm(matrix: torch.Tensor, iterations: int = 30) -> torch.Tensor:
    """The largest singular value of ``matrix`` by power iteration from a fixed start (a few
    matrix-vector products, where an SVD would cost more than Muon's step)."""
    generator = torch.Generator(device=matrix.device).manual_seed(0)
    vector = torch.randn(matrix.shape[1], generator=generator, device=matrix.device)
    vector = vector.to(matrix.dtype)
    for _ in range(iterations):
        vector = matrix.T @ (matrix @ vector)
        vector = vector / vector.norm().clamp_min(1e-30)
    return (matrix @ vector).norm()


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
