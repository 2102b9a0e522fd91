"""User-facing errors. The CLI turns any of these into a one-line message and exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HPTransferError(Exception):
    """Base class: a problem the user can fix (bad input, missing file, unavailable backend)."""


class ConfigError(HPTransferError, ValueError):
    """An invalid model, training, sweep or target specification."""


class DataError(HPTransferError):
    """A missing, corrupt or unreadable data source."""


class ResultsError(HPTransferError):
    """Missing, corrupt or inconsistent results under results/."""


class FormatVersionError(ResultsError, ConfigError):
    """A results table, spec.yaml or fit.json in a format version this hptransfer cannot read."""


class BackendUnavailableError(HPTransferError):
    """An optional backend (Triton, a GPU, a Ray cluster) was requested but cannot be used."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def yaml_problem(exc: Exception) -> str:
    """A YAML parser's error in one line: ``line 3, column 5: mapping values are not allowed``."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return where + (getattr(exc, "problem", None) or str(exc).splitlines()[0])
