"""Where a transfer's base HPs come from: the fitted sweep (its fit.json and spec.yaml), the
parameterization transferred by default, and the warnings its flagged optima give."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path

from hptransfer.analysis.fit import Fit, latest_fit, load_fit, usable_mask
from hptransfer.analysis.horizon import BATCH, MIN_POINTS, TOKENS, BudgetLine, line_axis
from hptransfer.analysis.results import read_trials
from hptransfer.budget import Horizon
from hptransfer.display import format_hp
from hptransfer.errors import ConfigError, ResultsError
from hptransfer.param import BaseShape
from hptransfer.param.rules import TRANSFER_PREFERENCE
from hptransfer.store import Location, ResultsStore, location
from hptransfer.store.folder import (
    FIT_FILE,
    SPEC_FILE,
)
from hptransfer.sweep import SweepSpec, load_spec

GOOD_FLAGS = ("ok", "fixed")


@dataclass(frozen=True)
class Source:
    """A fitted sweep: its folder, its fit.json and its normalised spec."""

    sweep_dir: Location  # local, or in object storage
    fit: Fit
    spec: SweepSpec

    @property
    def base(self) -> BaseShape:
        """The shape the base HPs were fitted at: fit.json's, with the proxy's heads and depth
        where fit.json records none. Every reader of a fitted sweep's base shape uses this."""
        proxy = self.spec.cells[0].model
        return self.fit.base_shape(default_heads=proxy.heads, default_depth=proxy.depth)

    @property
    def proxy_steps(self) -> int:
        """The horizon the base HPs were fitted at."""
        return int(self.fit.horizon["steps"] or self.spec.train.steps)

    @property
    def proxy_horizon(self) -> Horizon:
        """The proxy's budget: its steps and batch (fit.json's, else the spec's)."""
        batch = self.fit.horizon.get("batch") or self.spec.data.batch_size
        row_tokens = self.spec.data.seq_len if self.spec.model.takes_tokens else 1
        return Horizon(self.proxy_steps, int(batch), row_tokens)

    def budget_line(self, parameterization: str, axis: str) -> BudgetLine:
        """fit.json's η* line along ``axis`` (tokens or batch) of ``parameterization`` at the
        base shape; a one-line error when the sweep has fewer than :data:`MIN_POINTS`
        budgets along it."""
        base = self.base
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
    fit, base = source.fit, source.base
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
    return next(
        p for p in (*TRANSFER_PREFERENCE, *fit.parameterizations) if p in fit.parameterizations
    )


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
