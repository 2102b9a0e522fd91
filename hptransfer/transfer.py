"""Transfer fitted base HPs from a proxy sweep to a wide, sparse target, and train it.

The base HPs (σ, η, α_in, α_out, weight decay, α_attn) and base settings (the readout's zero
init) come from the sweep's ``fit.json``, fitted at the base shape; the target's per-parameter
HPs follow from them and the parameterization's table (:func:`hptransfer.models.describe`).
The target shares the sweep's data, batch size, steps and schedule unless overridden, which
breaks transfer (``docs/parameterizations.md#base-hyperparameters``) and is said loudly.
Baselines (``compare``) train the same target with the same base HPs under other
parameterizations; SP with the same base HPs is the paper's standard practice.

Runs go through the sweep's Ray orchestration (:func:`hptransfer.sweep.run_trials`) into
``results/<sweep>/transfer.parquet`` and ``transfer_curves.parquet``; stored runs are not
trained again. Before anything trains, each target's cost is estimated (parameters, training
memory, step time: :mod:`hptransfer.cost`) and a target that would not fit the memory
available is refused; its per-parameter table comes from :mod:`hptransfer.plan`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hptransfer.analysis.fit import Fit, latest_fit, load_fit, usable_mask
from hptransfer.analysis.horizon import BATCH, MIN_POINTS, TOKENS, BudgetLine, line_axis
from hptransfer.analysis.paired import PairedDifference, losses_by_seed, paired_difference
from hptransfer.analysis.regret import OFFSETS as REGRET_OFFSETS
from hptransfer.analysis.regret import shape_labels
from hptransfer.analysis.results import read_trials
from hptransfer.budget import (
    Horizon,
    Target,
    at_horizon,
    budgeted,
    factors_line,
    target_horizon,
)
from hptransfer.config import BaseHPs, DataConfig, RunConfig
from hptransfer.display import format_hp
from hptransfer.errors import ConfigError, ResultsError
from hptransfer.param import parameterization
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
from hptransfer.store import Location, ResultsStore, location
from hptransfer.store.folder import (
    FIT_FILE,
    SPEC_FILE,
    TRANSFER_CURVES_FILE,
    TRANSFER_FILE,
)
from hptransfer.sweep import SweepSpec, load_spec, run_trials

# Preference order for the transferred parameterization when the fit has several.
PRIMARY_ORDER = ("supar", "mup", "sp")
GOOD_FLAGS = ("ok", "fixed")


# ---------------------------------------------------------------------------- the source


@dataclass(frozen=True)
class Source:
    """A fitted sweep: its folder, its fit.json and its normalised spec."""

    sweep_dir: Location  # local, or in object storage
    fit: Fit
    spec: SweepSpec

    @property
    def proxy_steps(self) -> int:
        """The horizon the base HPs were fitted at."""
        return int(self.fit.horizon["steps"] or self.spec.train.steps)

    @property
    def proxy_horizon(self) -> Horizon:
        """The proxy's budget: its steps and batch (fit.json's, else the spec's)."""
        batch = self.fit.horizon.get("batch") or self.spec.data.batch_size
        row_tokens = self.spec.data.seq_len if self.spec.model.kind == "gpt" else 1
        return Horizon(self.proxy_steps, int(batch), row_tokens)

    def budget_line(self, parameterization: str, axis: str) -> BudgetLine:
        """fit.json's η* line along ``axis`` (tokens or batch) of ``parameterization`` at the
        base shape; a one-line error when the sweep has fewer than :data:`MIN_POINTS`
        budgets along it."""
        base = self.fit.base_shape()
        for row in self.fit.budget:
            at_base = row["width"] == base.width and row["density"] == base.density
            if row["parameterization"] == parameterization and at_base and line_axis(row) == axis:
                if len(row["horizons"]) >= MIN_POINTS:
                    return BudgetLine.from_json(row)
                return self._too_few(axis, len(row["horizons"]))
        return self._too_few(axis, 1)

    def _too_few(self, axis: str, found: int) -> typing.NoReturn:
        what = {
            TOKENS: "horizons (train.steps: [..])",
            BATCH: "batch sizes (data.batch_size: [..])",
        }
        raise ConfigError(
            f"budget rule fitted needs a proxy sweep over at least {MIN_POINTS} "
            f"{what[axis]}; sweep {self.fit.sweep!r} has {found} at the base shape"
        )


def load_source(path: Path | None, results_root: Path = Path("results")) -> Source:
    """The sweep at ``path`` (its folder or fit.json), else the one with the latest fit."""
    path = location(path) if path is not None else latest_fit(results_root)
    sweep_dir = path.parent if path.name == FIT_FILE else path
    if not ResultsStore(sweep_dir).exists():
        raise ResultsError(
            f"no sweep results in {sweep_dir}: run `hptransfer sweep` then `hptransfer fit` first"
        )
    if not (sweep_dir / FIT_FILE).is_file():
        usable_mask(read_trials(sweep_dir), "val_loss")  # says so if every trial diverged
        raise ResultsError(f"{sweep_dir} has no {FIT_FILE} yet: run `hptransfer fit` first")
    if not (sweep_dir / SPEC_FILE).is_file():
        raise ResultsError(
            f"{sweep_dir / SPEC_FILE} not found: transfer needs the sweep's model, data and "
            "training budget (written by `hptransfer sweep`)"
        )
    return Source(sweep_dir, load_fit(sweep_dir), load_spec(sweep_dir / SPEC_FILE))


def source_summary(source: Source, parameterization: str) -> str:
    """Where the base HPs come from, and their values."""
    fit, base = source.fit, source.fit.base_shape()
    estimates = fit.base_hps[parameterization].items()
    settings = fit.base_settings.get(parameterization, {}).items()
    hps = ", ".join(
        [
            *(f"{hp} {format_hp(est.value)} ({est.flag})" for hp, est in estimates),
            *(f"{name} {str(on).lower()}" for name, on in settings),
        ]
    )
    return (
        f"transfer from sweep {fit.sweep} ({source.sweep_dir / FIT_FILE}: {fit.metric} at "
        f"{source.proxy_steps} steps, base shape width {base.width}, density {base.density:g}"
        f"{'' if base.depth is None else f', depth {base.depth}'})\n"
        f"base HPs of {parameterization} (baselines use the same): {hps}"
    )


def default_parameterization(fit: Fit) -> str:
    """SμPar if the sweep fitted it, else μP, else SP."""
    return next(p for p in (*PRIMARY_ORDER, *fit.parameterizations) if p in fit.parameterizations)


def flag_warnings(fit: Fit, parameterization: str) -> list[str]:
    """One line per base HP whose optimum is flagged (edge, flat, few points)."""
    return [
        f"warning: base {hp} of {parameterization} is flagged {est.flag!r} "
        f"(value {format_hp(est.value)}, 95% interval {_interval(est.ci95)}): the target "
        "inherits it; widen or refine the sweep's range and re-fit"
        for hp, est in fit.base_hps.get(parameterization, {}).items()
        if est.flag not in GOOD_FLAGS
    ]


def _interval(ci95: tuple[float, float] | None) -> str:
    return "none" if ci95 is None else f"[{ci95[0]:.3g}, {ci95[1]:.3g}]"


# ---------------------------------------------------------------------------- the runs


@dataclass(frozen=True)
class Request:
    """What to train: targets (``--to``: shapes and budgets), parameterizations, seeds, the
    default budget (``steps``, ``batch_size``: of every target that names none) and the
    budget rule that moves the base HPs to each target's budget."""

    targets: list[Target]
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

    def budgets(self) -> list[Target]:
        """The targets with the default budget where they name none."""
        return [t.with_default_budget(self.steps, self.batch_size) for t in self.targets]


def target_runs(source: Source, request: Request) -> list[RunConfig]:
    """Every run: target × parameterization × seed, all with the transferred base HPs; with
    ``request.regret`` also the LR grid around each target's transferred η
    (:data:`REGRET_OFFSETS`)."""
    offsets = REGRET_OFFSETS if request.regret else (0.0,)
    return [
        dataclasses.replace(target, parameterization=p, seed=seed, hps=_lr_times(target.hps, k))
        for target in planned_targets(source, request)
        for p in request.parameterizations
        for k in offsets
        for seed in request.seeds
    ]


def planned_targets(source: Source, request: Request) -> list[RunConfig]:
    """One run per target: its shape and budget, the base HPs moved to that budget, under the
    transferred parameterization, seed 0 (complete: data sizes filled in)."""
    from hptransfer.data import load_dataset
    from hptransfer.train import complete_run

    proxy = source.spec.cells[0]
    base = source.fit.base_shape(default_heads=proxy.model.heads, default_depth=proxy.model.depth)
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


def transferred(runs: list[RunConfig], source: Source, request: Request) -> list[RunConfig]:
    """The runs at their target's transferred η itself (all of them without ``--regret``)."""
    lrs = transferred_lrs(runs, source, request)
    return [run for run, lr in zip(runs, lrs, strict=True) if run.hps.lr == lr]


def transferred_lrs(runs: list[RunConfig], source: Source, request: Request) -> list[float]:
    """Per run, its target's transferred η (the regret grid's centre)."""
    targets = planned_targets(source, request)

    def key(run: RunConfig) -> tuple:
        return run.model, run.train, run.data

    lrs = {key(target): target.hps.lr for target in targets}
    return [lrs[key(run)] for run in runs]


def _lr_times(hps: BaseHPs, octaves: float) -> BaseHPs:
    """``hps`` with η × 2^octaves."""
    return dataclasses.replace(hps, lr=hps.lr * 2.0**octaves)


def _target_run(
    template: RunConfig,
    target: Target,
    proxy: Horizon,
    rule: BudgetRule,
    line: BudgetLine | None,
) -> RunConfig:
    """The template at ``target``'s shape and budget; with a fitted ``line``, η starts from
    the line's value at the proxy's budget (the rule moves it from there)."""
    try:
        run = template.retarget(**target.shape)
    except ConfigError as exc:
        raise ConfigError(f"--to {target.label}: {exc}") from None
    if line is not None and target.has_budget:
        lr = 2.0 ** line.at_budget(proxy)
        run = dataclasses.replace(run, hps=dataclasses.replace(run.hps, lr=lr))
    return budgeted(run, proxy, target, rule)


def budget_notes(source: Source, request: Request, runs: list[RunConfig]) -> list[str]:
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
    base_depth = source.fit.base.get("depth", source.spec.model.depth)
    if run.model.depth == base_depth or parameterization(run.parameterization).depth_rules:
        return None
    return (
        f"note: depth {run.model.depth} differs from the proxy's {base_depth}; "
        f"{run.parameterization} transfers across width and density, depth is outside its "
        "theory (depth rules: +completep)"
    )


# ---------------------------------------------------------------------------- run and report


def run_transfer(
    source: Source,
    runs: list[RunConfig],
    execution: Execution,
    *,
    target: TargetConfig | None = None,
    restart: bool = False,
) -> pd.DataFrame:
    """Train the runs not stored yet; the stored rows of ``runs``, in order. With
    ``target``, each run trains on Ray Train (:mod:`hptransfer.target`), else as a Tune trial."""
    if target is not None:
        from hptransfer.target import train_targets

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


def gain_rows(rows: pd.DataFrame, primary: str, baselines: tuple[str, ...]) -> list[dict]:
    """Per target: the mean validation loss over seeds of each parameterization; per baseline,
    the primary's gain in loss (%, positive: the primary is better) and the paired difference
    primary − baseline over the seeds both ran, with its 95% interval ("within noise" when the
    interval covers zero)."""
    target = pd.Series(shape_labels(rows), index=rows.index)
    out = []
    for label, runs in rows.groupby(target, sort=False):
        parts = dict(tuple(runs.groupby("parameterization", sort=False)))
        loss = {p: _mean_loss(part) for p, part in parts.items()}
        row: dict[str, object] = {"width × density": label, "seeds": runs["seed"].nunique()}
        row.update(loss)
        for b in baselines:
            diff = _paired(parts[primary], parts[b])
            noise = " (within noise)" if diff is not None and diff.within_noise else ""
            row[f"{primary} gain vs {b}"] = _gain(loss[primary], loss[b]) + noise
            row[f"{primary} − {b}, 95% CI"] = "-" if diff is None else diff.text()
        out.append(row)
    return out


def _paired(runs: pd.DataFrame, baseline: pd.DataFrame) -> PairedDifference | None:
    a, b = losses_by_seed(runs), losses_by_seed(baseline)
    return None if a is None or b is None else paired_difference(a, b)


def _mean_loss(runs: pd.DataFrame) -> float | str:
    if runs["status"].eq("error").any():
        return "error"
    if runs["diverged"].any():
        return "diverged"
    return float(runs["val_loss"].mean())


def _gain(loss: float | str, baseline: float | str) -> str:
    if isinstance(loss, str) or isinstance(baseline, str):
        return "-"
    return f"{100 * (baseline - loss) / baseline:+.2f}%"
