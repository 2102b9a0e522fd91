"""A whole ``hptransfer fit``: the sweep folder found, fitted, its fit.json written, and the
report the command prints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hptransfer.analysis.fit.document import Fit, FitSettings, write_fit
from hptransfer.analysis.fit.pipeline import fit_sweep
from hptransfer.analysis.fit.report import fit_report
from hptransfer.analysis.results import find_sweep
from hptransfer.store import Location


@dataclass(frozen=True)
class Fitted:
    """What ``hptransfer fit`` did: the fit, the fit.json it wrote, and its report."""

    fit: Fit
    path: Path
    report: str


def fit_command(
    sweep: Location | None, results: Location, settings: FitSettings | None = None
) -> Fitted:
    """Fit ``sweep`` (None: the latest sweep under ``results``), write its fit.json and say
    what the fit found (:func:`~hptransfer.analysis.fit.report.fit_report`)."""
    sweep_dir = find_sweep(sweep, results)
    fit = fit_sweep(sweep_dir, settings)
    path = write_fit(fit, sweep_dir)
    return Fitted(fit, path, fit_report(fit, sweep_dir))
