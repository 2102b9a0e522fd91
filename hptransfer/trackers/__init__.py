"""Experiment trackers: Weights & Biases, MLflow and TensorBoard, chosen by ``--log`` or the
spec's ``log:`` key.

This module only names them, parses their settings and checks that each is installed (no
tracker is imported before that). :mod:`hptransfer.trackers.backends` writes to them;
:mod:`hptransfer.sweep.tracking` logs a sweep's trials through a Ray Tune logger callback and
:mod:`hptransfer.trackers.targets` a Ray Train target from the driver's progress stream.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hptransfer.errors import BackendUnavailableError, ConfigError, did_you_mean

# name -> (the module it needs, its settings in the spec's log: key)
TRACKERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "wandb": ("wandb", ("project", "entity", "group", "mode", "dir")),
    "mlflow": ("mlflow", ("tracking_uri", "experiment")),
    "tensorboard": ("torch.utils.tensorboard", ("dir",)),
}


@dataclass(frozen=True)
class Tracker:
    """One tracker and its settings (strings; an absent one takes the tracker's default)."""

    name: str
    settings: tuple[tuple[str, str], ...] = ()

    def setting(self, key: str) -> str | None:
        return dict(self.settings).get(key)

    def to_yaml(self) -> Any:
        return {self.name: dict(self.settings)} if self.settings else self.name


def parse_trackers(raw: Any, key: str = "log") -> tuple[Tracker, ...]:
    """The spec's ``log:`` value: a name, a list of names and ``{name: {settings}}``
    mappings, or one mapping of names to settings. Raises ConfigError naming ``key``."""
    if raw is None:
        return ()
    if isinstance(raw, (str, Mapping)):
        items = [(key, raw)]
    elif isinstance(raw, list):
        items = [(f"{key}[{index}]", item) for index, item in enumerate(raw)]
    else:
        raise ConfigError(f"{key}: expected a tracker name or a list of them, got {raw!r}")
    trackers: list[Tracker] = []
    for where, item in items:
        entries = item.items() if isinstance(item, Mapping) else [(item, None)]
        trackers += [_tracker(where, name, settings) for name, settings in entries]
    names = [tracker.name for tracker in trackers]
    if len(set(names)) != len(names):
        raise ConfigError(f"{key}: names a tracker twice: {names}")
    return tuple(trackers)


def _tracker(key: str, name: Any, settings: Any) -> Tracker:
    if name not in TRACKERS:
        hint = did_you_mean(str(name), TRACKERS)
        raise ConfigError(f"{key}: unknown tracker {name!r}{hint} (known: {', '.join(TRACKERS)})")
    if settings is None:
        return Tracker(name)
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{key}.{name}: expected a mapping of settings, got {settings!r}")
    allowed = TRACKERS[name][1]
    for setting, value in settings.items():
        if setting not in allowed:
            hint = did_you_mean(str(setting), allowed)
            raise ConfigError(
                f"{key}.{name}.{setting}: unknown setting{hint} (allowed: {', '.join(allowed)})"
            )
        if not isinstance(value, str):
            raise ConfigError(f"{key}.{name}.{setting}: expected a string, got {value!r}")
    return Tracker(name, tuple(settings.items()))


def with_flags(trackers: Iterable[Tracker], names: Iterable[str]) -> tuple[Tracker, ...]:
    """The spec's trackers and those ``--log`` names (a name the spec has keeps its settings)."""
    chosen = {tracker.name: tracker for tracker in trackers}
    for name in names:
        chosen.setdefault(name, Tracker(name))
    return tuple(chosen.values())


def chosen(trackers: Iterable[Tracker], names: Iterable[str]) -> tuple[Tracker, ...]:
    """:func:`with_flags`, each tracker checked to be installed (:func:`check_installed`)."""
    merged = with_flags(trackers, names)
    check_installed(merged)
    return merged


def check_installed(trackers: Iterable[Tracker]) -> None:
    """Import each tracker's module now, before anything runs; a missing one fails in one
    line with its install command."""
    for tracker in trackers:
        module = TRACKERS[tracker.name][0]
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise BackendUnavailableError(
                f"--log {tracker.name} needs {module.split('.')[-1]}, which cannot be imported "
                f"({exc}): pip install 'hptransfer[{tracker.name}]'"
            ) from None
