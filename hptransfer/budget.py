"""A target's own training budget, and the base HPs moved to it.

``--to width=256,density=0.25,tokens=1228800,batch=32`` trains the target for ``tokens`` (or
``steps``) with ``batch`` rows per step (default: the proxy's batch, and the proxy's steps
when neither tokens nor steps is given). Warmup keeps its fraction of the run and the LR
decay spans the whole run (:func:`at_horizon`). The base HPs were fitted at the proxy's
horizon and batch; a budget rule (:mod:`hptransfer.param.rules`: ``none``, ``completedp``,
``fitted``) moves η, weight decay, Adam ε and Adam's 1 − β by powers of m_D = tokens / proxy
tokens and m_B = batch / proxy batch, before the width, density (and depth) rules. At
m_D = m_B = 1 every factor is 1 and the run is the one without a budget, bit for bit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from hptransfer.config import DataConfig, RunConfig, TrainConfig
from hptransfer.errors import ConfigError
from hptransfer.param import BaseHPs
from hptransfer.param.base import BudgetMultipliers
from hptransfer.param.rules import BudgetRule


@dataclass(frozen=True)
class TargetShape:
    """What a ``--to`` target changes in the proxy's model (None: the proxy's own)."""

    width: int | None = None
    density: float | None = None
    depth: int | None = None
    heads: int | None = None

    def changes(self) -> dict[str, int | float]:
        """The model fields this shape sets, for :meth:`~hptransfer.config.RunConfig.retarget`."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class TargetSpec:
    """One ``--to`` target: its shape and its budget (``tokens`` or ``steps``, and ``batch``;
    None: the proxy's)."""

    shape: TargetShape = field(default_factory=TargetShape)
    tokens: int | None = None
    steps: int | None = None
    batch: int | None = None

    def __post_init__(self) -> None:
        if self.tokens is not None and self.steps is not None:
            raise ConfigError(f"--to {self.label}: give tokens or steps, not both")

    @property
    def has_budget(self) -> bool:
        return (self.tokens, self.steps, self.batch) != (None, None, None)

    @property
    def label(self) -> str:
        budget = {"tokens": self.tokens, "steps": self.steps, "batch": self.batch}
        items = {**self.shape.changes(), **{k: v for k, v in budget.items() if v is not None}}
        return ",".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in items.items()
        )

    def with_default_budget(self, steps: int | None, batch: int | None) -> TargetSpec:
        """This target with ``steps``/``batch`` where it names no horizon/batch of its own."""
        own_horizon = self.tokens is not None or self.steps is not None
        return dataclasses.replace(
            self,
            steps=self.steps if own_horizon else steps,
            batch=self.batch if self.batch is not None else batch,
        )


@dataclass(frozen=True)
class Horizon:
    """A run's budget: ``steps`` of ``batch`` rows of ``row_tokens`` tokens (1 for non-text)."""

    steps: int
    batch: int
    row_tokens: int

    @property
    def tokens(self) -> int:
        return self.steps * self.batch * self.row_tokens

    def describe(self) -> str:
        return f"{self.steps} steps × batch {self.batch} ({self.tokens:,} tokens)"


def at_horizon(train: TrainConfig, steps: int) -> TrainConfig:
    """``train`` for a run of ``steps``: warmup keeps its fraction of the run (the cosine or
    linear decay spans the whole run already)."""
    if steps == train.steps:
        return train
    warmup = min(steps, round(train.warmup_steps * steps / train.steps))
    return dataclasses.replace(train, steps=steps, warmup_steps=warmup)


def at_batch(train: TrainConfig, data: DataConfig, batch: int) -> tuple[TrainConfig, DataConfig]:
    """``train`` and ``data`` at ``batch`` rows per step for the same tokens: whole steps of
    the new batch (rounded down), warmup its fraction of the run, and as many
    validation windows (``eval_batches`` × batch: the same windows when the count divides)."""
    if batch == data.batch_size:
        return train, data
    steps = train.steps * data.batch_size // batch
    windows = data.eval_batches * data.batch_size
    eval_batches = max(1, round(windows / batch))
    return at_horizon(train, steps), dataclasses.replace(
        data, batch_size=batch, eval_batches=eval_batches
    )


def target_horizon(proxy: Horizon, target: TargetSpec) -> Horizon:
    """The target's budget: its tokens (whole steps of its batch) or steps, else the proxy's."""
    batch = proxy.batch if target.batch is None else target.batch
    if batch < 1:
        raise ConfigError(f"--to {target.label}: batch must be >= 1")
    steps = proxy.steps if target.steps is None else target.steps
    if target.tokens is not None:
        per_step = batch * proxy.row_tokens
        steps = target.tokens // per_step
        if steps < 1:
            raise ConfigError(
                f"--to {target.label}: tokens={target.tokens:,} is fewer than one batch "
                f"({batch} rows × {proxy.row_tokens} tokens = {per_step:,} tokens)"
            )
    if steps < 1:
        raise ConfigError(f"--to {target.label}: steps must be >= 1")
    return Horizon(steps, batch, proxy.row_tokens)


def budget_multipliers(proxy: Horizon, target: Horizon) -> BudgetMultipliers:
    """m_D (tokens) and m_B (batch) of the target against the proxy."""
    return BudgetMultipliers(tokens=target.tokens / proxy.tokens, batch=target.batch / proxy.batch)


def move(
    rule: BudgetRule, m: BudgetMultipliers, hps: BaseHPs, train: TrainConfig
) -> tuple[BaseHPs, TrainConfig]:
    """The base HPs and optimizer settings at budget ``m``: η and weight decay, Adam's ε, and
    each 1 − β (Adam's two, Muon's momentum) times the rule's factors (β kept in [0, 1))."""
    hps = dataclasses.replace(
        hps, lr=hps.lr * rule.lr(m), weight_decay=hps.weight_decay * rule.weight_decay(m)
    )
    beta = rule.one_minus_beta(m)
    if beta == 1:
        return hps, dataclasses.replace(train, eps=train.eps * rule.eps(m))
    betas = tuple(_moved_beta(b, beta) for b in train.betas)
    # Muon's momentum buffer is the same kind of EMA as Adam's first moment (torch lerps it):
    # its timescale moves alike (docs/muon.md). Muon's ε is not Adam's: the ε factor skips it.
    muon = {"muon_momentum": _moved_beta(train.muon_momentum, beta)}
    return hps, dataclasses.replace(
        train,
        eps=train.eps * rule.eps(m),
        betas=betas,
        **(muon if train.optimizer == "muon" else {}),
    )


def _moved_beta(beta: float, one_minus_factor: float) -> float:
    """β with 1 − β times the factor, kept in [0, 1)."""
    return max(0.0, 1 - (1 - beta) * one_minus_factor)


def budgeted(run: RunConfig, proxy: Horizon, target: TargetSpec, rule: BudgetRule) -> RunConfig:
    """``run`` (the proxy's budget and base HPs) trained for ``target``'s budget under
    ``rule``; ``run`` itself when the target names no budget."""
    if not target.has_budget:
        return run
    horizon = target_horizon(proxy, target)
    hps, train = move(rule, budget_multipliers(proxy, horizon), run.hps, run.train)
    data = dataclasses.replace(run.data, batch_size=horizon.batch)
    return dataclasses.replace(run, hps=hps, train=at_horizon(train, horizon.steps), data=data)


def factors_line(rule: BudgetRule, proxy: Horizon, target: Horizon) -> str:
    """What ``plan`` and ``transfer`` say of a target's budget: m_D, m_B and the factors."""
    m = budget_multipliers(proxy, target)
    factors = (
        f"η × {rule.lr(m):.4g}, weight decay × {rule.weight_decay(m):.4g}, "
        f"ε × {rule.eps(m):.4g}, 1 − β × {rule.one_minus_beta(m):.4g}"
    )
    return (
        f"budget: {target.describe()} against the proxy's {proxy.describe()}: "
        f"m_D = {m.tokens:.4g}, m_B = {m.batch:.4g}; rule {rule.name}: {factors}"
    )
