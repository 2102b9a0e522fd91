"""What a transfer trains: its request (``--to`` targets, parameterizations, seeds, budget
rule), each target planned once at its shape and budget with the base HPs moved there, and
the runs that train them (through the sweep's Ray Tune path or on Ray Train)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pandas as pd

from hptransfer.analysis.fit import Fit
from hptransfer.analysis.horizon import BATCH, TOKENS, BudgetLine
from hptransfer.analysis.regret import OFFSETS as REGRET_OFFSETS
from hptransfer.budget import (
    Horizon,
    TargetSpec,
    at_horizon,
    budgeted,
    factors_line,
    target_horizon,
)
from hptransfer.config import DataConfig, RunConfig
from hptransfer.errors import ConfigError
from hptransfer.param import BaseHPs, parameterization
from hptransfer.param.rules import (
    BUDGET_NONE,
    BUDGET_RULES,
    COMPLETEDP,
    FITTED,
    BudgetRule,
    budget_rule_name,
    fitted_rule,
)
from hptransfer.runtime.cluster import Execution
from hptransfer.runtime.resources import TargetConfig
from hptransfer.store import ResultsStore
from hptransfer.store.folder import (
    TRANSFER_CURVES_FILE,
    TRANSFER_FILE,
)
from hptransfer.sweep import run_trials
from hptransfer.transfer.source import Source


@dataclass(frozen=True)
class Request:
    """What to train: targets (``--to``: shapes and budgets), parameterizations, seeds, the
    default budget (``steps``, ``batch_size``: of every target that names none) and the
    budget rule that moves the base HPs to each target's budget."""

    targets: list[TargetSpec]
    parameterization: str
    compare: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    steps: int | None = None
    batch_size: int | None = None
    regret: bool = False
    data: str | None = None  # a token folder for the targets (default: the proxy's data)
    allow_data_change: bool = False
    budget_rule: str = COMPLETEDP.name

    def __post_init__(self) -> None:
        for name in (self.parameterization, *self.compare):
            if name:  # an empty primary: the fit's default, chosen once the fit is read
                parameterization(name)
        budget_rule_name(self.budget_rule)
        if not self.seeds:
            raise ConfigError("--seeds is empty; expected e.g. 0,1")
        for flag, value in (("--steps", self.steps), ("--batch-size", self.batch_size)):
            if value is not None and value < 1:
                raise ConfigError(f"{flag} must be >= 1; got {value}")

    @property
    def baselines(self) -> tuple[str, ...]:
        return tuple(p for p in dict.fromkeys(self.compare) if p != self.parameterization)

    @property
    def parameterizations(self) -> tuple[str, ...]:
        """The transferred one first, then the baselines."""
        return (self.parameterization, *self.baselines)

    def budgets(self) -> list[TargetSpec]:
        """The targets with the default budget where they name none."""
        return [t.with_default_budget(self.steps, self.batch_size) for t in self.targets]


@dataclass(frozen=True)
class TransferRuns(Sequence[RunConfig]):
    """Every run of a transfer, in order, each with its target's transferred η (``centres``:
    the centre of its regret grid). Iterates over the runs."""

    runs: tuple[RunConfig, ...]
    centres: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.runs)

    def __getitem__(self, index):  # a run, or a tuple of runs for a slice
        return self.runs[index]

    def transferred(self) -> list[RunConfig]:
        """The runs at their target's transferred η itself (all of them without ``--regret``)."""
        return [run for run, lr in zip(self.runs, self.centres, strict=True) if run.hps.lr == lr]


def target_runs(source: Source, request: Request) -> TransferRuns:
    """Every run: target × parameterization × seed, all with the transferred base HPs; with
    ``request.regret`` also the LR grid around each target's transferred η
    (:data:`REGRET_OFFSETS`). The targets are planned once."""
    offsets = REGRET_OFFSETS if request.regret else (0.0,)
    targets = planned_targets(source, request)
    grid = list(itertools.product(targets, request.parameterizations, offsets, request.seeds))
    runs = (replace(t, parameterization=p, seed=s, hps=_lr_times(t.hps, k)) for t, p, k, s in grid)
    return TransferRuns(tuple(runs), tuple(t.hps.lr for t, *_ in grid))


def planned_targets(source: Source, request: Request) -> list[RunConfig]:
    """One run per target: its shape and budget, the base HPs moved to that budget, under the
    transferred parameterization, seed 0 (complete: data sizes filled in)."""
    from hptransfer.data import load_dataset
    from hptransfer.train import complete_run

    proxy = source.spec.cells[0]
    base = source.base
    horizon = source.proxy_horizon
    data = proxy.data
    model = proxy.model.replace(
        width=base.width,
        density=base.density,
        depth=base.depth,
        **source.fit.base_settings.get(request.parameterization, {}),
    )
    if request.data is not None:  # sized by the targets' own vocabulary
        data = dataclasses.replace(data, corpus="tokens", path=request.data)
        model = model.replace(input_size=None, output_size=None)
    check_data(source.fit, data, request.allow_data_change)
    template = dataclasses.replace(
        proxy,
        model=model,
        data=data,
        train=at_horizon(proxy.train, horizon.steps),
        hps=source.fit.base_config(request.parameterization),
        base=base,
    )
    dataset = load_dataset(template.data)
    rule, line = budget_rule(source, request)
    return [
        complete_run(_target_run(template, target, horizon, rule, line), dataset)
        for target in request.budgets()
    ]


def check_data(fit: Fit, data: DataConfig, allow_change: bool) -> str | None:
    """Refuse target data tokenized otherwise than the proxy's (fit.json's ``data``), unless
    ``allow_change``; then return the warning line. None when they match, or when the fit
    predates recording its data."""
    from hptransfer.data.tokens import data_identity, describe_identity, same_tokens

    if not fit.data:
        return None
    target = data_identity(data.corpus, data.path)
    if same_tokens(fit.data, target):
        return None
    what = (
        f"the targets' data {describe_identity(target)} differ from the proxy's "
        f"{describe_identity(fit.data)} (fit.json)"
    )
    if not allow_change:
        raise ConfigError(
            f"{what}: the base HPs were tuned on other tokens; --allow-data-change to train anyway"
        )
    return f"warning: {what}; trained anyway (--allow-data-change)"


def budget_rule(source: Source, request: Request) -> tuple[BudgetRule, BudgetLine | None]:
    """The budget rule of the request; for ``fitted``, the rule of the sweep's η* line at
    the base shape (:meth:`Source.budget_line`) and that line: along the tokens when a
    target's horizon differs from the proxy's (by a step or more), along the batch when its
    batch does. One sweep fits one of them, so a target that moves both is refused."""
    if request.budget_rule != FITTED:
        rule = BUDGET_RULES[request.budget_rule]
        assert rule is not None
        return rule, None
    proxy = source.proxy_horizon
    budgets = [target_horizon(proxy, t) for t in request.budgets() if t.has_budget]
    moved = {
        TOKENS: any(abs(b.tokens - proxy.tokens) >= b.batch * b.row_tokens for b in budgets),
        BATCH: any(b.batch != proxy.batch for b in budgets),
    }
    lines = [source.budget_line(request.parameterization, axis) for axis, m in moved.items() if m]
    exponents = {line.axis: line.slope for line in lines}
    rule = fitted_rule(gamma=-exponents.get(TOKENS, 0.0), beta=exponents.get(BATCH, 0.0))
    return rule, lines[0] if lines else None


def _lr_times(hps: BaseHPs, octaves: float) -> BaseHPs:
    """``hps`` with η × 2^octaves."""
    return dataclasses.replace(hps, lr=hps.lr * 2.0**octaves)


def _target_run(
    template: RunConfig,
    target: TargetSpec,
    proxy: Horizon,
    rule: BudgetRule,
    line: BudgetLine | None,
) -> RunConfig:
    """The template at ``target``'s shape and budget; with a fitted ``line``, η starts from
    the line's value at the proxy's budget (the rule moves it from there)."""
    try:
        run = template.retarget(**target.shape.changes())
    except ConfigError as exc:
        raise ConfigError(f"--to {target.label}: {exc}") from None
    if line is not None and target.has_budget:
        lr = 2.0 ** line.at_budget(proxy)
        run = dataclasses.replace(run, hps=dataclasses.replace(run.hps, lr=lr))
    return budgeted(run, proxy, target, rule)


def budget_notes(source: Source, request: Request, runs: Sequence[RunConfig]) -> list[str]:
    """Each target budget's line (m_D, m_B, the rule's factors), and the loud warning when a
    budget differs from the proxy's with no rule to move the HPs."""
    proxy = source.proxy_horizon
    rule, _ = budget_rule(source, request)
    notes = []
    for run in runs:
        horizon = Horizon(run.train.steps, run.data.batch_size, proxy.row_tokens)
        if horizon == proxy:
            continue
        notes.append(factors_line(rule, proxy, horizon))
        if rule.name == BUDGET_NONE.name:
            notes.append(
                f"WARNING: the target trains {horizon.describe()} but the base HPs were "
                f"fitted at {proxy.describe()}: μP/SμPar do not transfer across steps or "
                "batch size, and budget rule none leaves them as they are"
            )
    return list(dict.fromkeys(notes))


def depth_note(source: Source, run: RunConfig) -> str | None:
    """A note when ``run`` changes depth without depth rules (outside μP/SμPar's theory)."""
    base_depth = source.base.depth
    if run.model.depth == base_depth or parameterization(run.parameterization).depth_rules:
        return None
    return (
        f"note: depth {run.model.depth} differs from the proxy's {base_depth}; "
        f"{run.parameterization} transfers across width and density, depth is outside its "
        "theory (depth rules: +completep)"
    )


def run_transfer(
    source: Source,
    runs: Sequence[RunConfig],
    execution: Execution,
    *,
    target: TargetConfig | None = None,
    restart: bool = False,
) -> pd.DataFrame:
    """Train the runs not stored yet; the stored rows of ``runs``, in order. With ``target``,
    each run trains on Ray Train (:mod:`hptransfer.distributed`), else as a Tune trial."""
    if target is not None:
        from hptransfer.distributed import train_targets

        store = ResultsStore(
            source.sweep_dir, trials_file=TRANSFER_FILE, curves_file=TRANSFER_CURVES_FILE
        )
        return train_targets(
            runs,
            store,
            target,
            sweep=source.spec.name,
            spec_hash=source.spec.hash,
            execution=execution,
            restart=restart,
        )
    return run_trials(
        runs,
        source.sweep_dir,
        sweep=source.spec.name,
        spec_hash=source.spec.hash,
        execution=execution,
        trials_file=TRANSFER_FILE,
        curves_file=TRANSFER_CURVES_FILE,
    )
