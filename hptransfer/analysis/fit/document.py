"""The fit.json file: :class:`Fit` (its contents, typed), :class:`FitSettings` (how the
optima were located), and the one reader and writer (``schema_version`` 2; the format key by
key: ``docs/fit.md``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hptransfer.analysis.optimum import CLIFF
from hptransfer.errors import ConfigError, FormatVersionError, ResultsError
from hptransfer.param import BaseHPs, BaseShape
from hptransfer.store import location, write_text
from hptransfer.store.folder import FIT_FILE, RESULTS_ROOT, latest

SCHEMA_VERSION = 2
METRICS = ("val_loss", "train_loss")


@dataclass(frozen=True)
class FitSettings:
    """How optima are located: loss column, bootstrap size, parabola and slice widths.

    ``at_step``: fit the losses logged at that step (curves.parquet) by every trial that
    reached it, ASHA-stopped ones included, instead of completed trials at the full horizon.
    """

    metric: str = "val_loss"
    n_boot: int = 1000
    window_octaves: float = 1.25
    slice_octaves: float = 0.25
    seed: int = 0
    at_step: int | None = None
    cliff: float = CLIFF

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"metric must be one of {', '.join(METRICS)}; got {self.metric!r}")
        if self.n_boot < 1 or self.window_octaves <= 0 or self.slice_octaves < 0:
            raise ConfigError("n_boot must be >= 1, window_octaves > 0 and slice_octaves >= 0")
        if not self.cliff > 0:
            raise ConfigError(f"cliff must be > 0 (a fraction of the best loss); got {self.cliff}")
        if self.at_step is not None and self.at_step < 1:
            raise ConfigError(f"at_step must be >= 1; got {self.at_step}")


@dataclass(frozen=True)
class HPEstimate:
    """One base HP: its value, log2, 95% interval (HP units) and flag."""

    value: float
    log2: float | None
    ci95: tuple[float, float] | None
    flag: str


@dataclass(frozen=True, eq=False)
class Fit:
    """The contents of fit.json; :func:`load_fit` reads one, :func:`fit_sweep` makes one."""

    sweep: str
    created: str
    metric: str
    horizon: dict[str, int | None]
    spec_hash: list[str]
    base: dict[str, Any]
    parameterizations: list[str]
    searched_hps: list[str]
    group_axes: list[str]
    settings: FitSettings
    base_hps: dict[str, dict[str, HPEstimate]]
    optima: pd.DataFrame = field(repr=False)
    drift: pd.DataFrame = field(repr=False)
    joint: dict[str, dict[str, Any]] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)  # of the process that fitted
    budget: list[dict[str, Any]] = field(default_factory=list)  # η* lines: budget_lines
    # the proxy's data: corpus, vocabulary, tokenizer (hptransfer.data.tokens.data_identity);
    # empty in fits made before it was recorded
    data: dict[str, Any] = field(default_factory=dict)
    # per parameterization, the base settings (readout_zero_init) its targets use; empty in
    # fits made before they were recorded (targets keep the spec's model)
    base_settings: dict[str, dict[str, bool]] = field(default_factory=dict)

    def base_shape(
        self, default_heads: int | None = None, default_depth: int | None = None
    ) -> BaseShape:
        """The shape the base HPs were fitted at; ``default_heads`` and ``default_depth``
        when fit.json does not record the base's heads or depth."""
        heads = self.base.get("heads", default_heads)
        depth = self.base.get("depth", default_depth)
        return BaseShape(
            width=int(self.base["width"]),
            density=float(self.base["density"]),
            heads=None if heads is None else int(heads),
            depth=None if depth is None else int(depth),
        )

    def base_config(self, parameterization: str) -> BaseHPs:
        """The base HPs of ``parameterization`` (fitted or fixed; defaults for the rest)."""
        if parameterization not in self.base_hps or not self.base_hps[parameterization]:
            raise ResultsError(
                f"fit of sweep {self.sweep!r} has no optimum for {parameterization!r} at the "
                f"base shape {self.base}; fitted: {', '.join(self.parameterizations)}"
            )
        hps = self.base_hps[parameterization]
        return BaseHPs(**{name: est.value for name, est in hps.items()})

    def to_json(self) -> dict[str, Any]:
        """The fit.json document (strict JSON types)."""
        return {
            "schema_version": SCHEMA_VERSION,
            **{k: getattr(self, k) for k in _PLAIN_KEYS},
            "provenance": self.provenance,
            "settings": asdict(self.settings),
            "base_hps": {
                p: {hp: asdict(est) for hp, est in hps.items()} for p, hps in self.base_hps.items()
            },
            "optima": _records(self.optima),
            "drift": _records(self.drift),
            "joint": self.joint,
            "budget": self.budget,
            "data": self.data,
            "base_settings": self.base_settings,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Fit:
        return cls(
            **{k: doc[k] for k in _PLAIN_KEYS},
            settings=FitSettings(**doc["settings"]),
            base_hps={
                p: {hp: _hp_estimate(est) for hp, est in hps.items()}
                for p, hps in doc["base_hps"].items()
            },
            optima=pd.DataFrame(doc["optima"]),
            drift=pd.DataFrame(doc["drift"]),
            joint=doc.get("joint", {}),
            provenance=doc.get("provenance", {}),  # absent in version 1
            budget=doc.get("budget", []),  # absent before horizon sweeps
            data=doc.get("data", {}),  # absent before data identities were recorded
            base_settings=doc.get("base_settings", {}),  # absent before readout_zero_init
        )


_PLAIN_KEYS = (
    "sweep",
    "created",
    "metric",
    "horizon",
    "spec_hash",
    "base",
    "parameterizations",
    "searched_hps",
    "group_axes",
)


def _hp_estimate(doc: dict[str, Any]) -> HPEstimate:
    ci95 = doc["ci95"]
    return HPEstimate(doc["value"], doc["log2"], tuple(ci95) if ci95 else None, doc["flag"])


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain JSON values (NaN → None, numpy scalars → Python)."""
    return json.loads(table.to_json(orient="records", double_precision=15))


def write_fit(fit: Fit, sweep_dir: Path) -> Path:
    """Write ``sweep_dir/fit.json`` atomically (temporary file, then rename)."""
    path = location(sweep_dir) / FIT_FILE
    if path.is_file():
        _check_version(_fit_doc(path), path)  # never replace a newer hptransfer's fit
    write_text(path, json.dumps(fit.to_json(), indent=1, allow_nan=False) + "\n")
    return path


def load_fit(path: Path) -> Fit:
    """Read fit.json (``path`` is the file or its sweep folder)."""
    path = location(path)
    if path.is_dir():
        path = path / FIT_FILE
    if not path.is_file():
        raise ResultsError(f"{path} not found: run `hptransfer fit` first")
    doc = _fit_doc(path)
    _check_version(doc, path)
    try:
        return Fit.from_json(doc)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ResultsError(
            f"{path} is not a valid fit.json ({exc}): rerun `hptransfer fit`"
        ) from exc


def _fit_doc(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise ResultsError(
            f"{path} is not a valid fit.json ({exc}): rerun `hptransfer fit`"
        ) from exc
    if not isinstance(doc, dict):
        raise ResultsError(
            f"{path} is not a valid fit.json (not an object): rerun `hptransfer fit`"
        )
    return doc


def _check_version(doc: dict[str, Any], path: Path) -> None:
    """Versions 1 (migrated on read) and 2 are read; anything else is refused in one line."""
    version = doc.get("schema_version")
    if version not in (1, SCHEMA_VERSION) or isinstance(version, bool):
        raise FormatVersionError(
            f"{path} has schema_version {version!r}, not one this hptransfer reads (1 to "
            f"{SCHEMA_VERSION}): upgrade hptransfer to read it (the file was left unchanged)"
        )


def latest_fit(root: Path = RESULTS_ROOT) -> Path:
    """The most recently written fit.json under ``root``."""
    path = latest(root, FIT_FILE)
    if path is None:
        raise ResultsError(f"no {FIT_FILE} under {root}/: run `hptransfer fit` first")
    return path
