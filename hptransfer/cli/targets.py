"""``--to`` specs: the target shapes and budgets that ``plan`` and ``transfer`` move a proxy
run to (:class:`hptransfer.budget.TargetSpec`)."""

from __future__ import annotations

from hptransfer.budget import TargetShape, TargetSpec
from hptransfer.config import parse_fraction
from hptransfer.errors import ConfigError
from hptransfer.param.base import check_density, require

SHAPE_KEYS = ("width", "density", "depth", "heads")
BUDGET_KEYS = ("tokens", "steps", "batch")
TARGET_KEYS = (*SHAPE_KEYS, *BUDGET_KEYS)


def parse_target(text: str) -> TargetSpec:
    """Parse a ``--to`` spec such as ``width=4096,density=0.125,tokens=2e9,batch=64``."""
    if not text or not text.strip():
        raise ConfigError("empty --to spec; expected e.g. width=4096,density=0.125")
    overrides: dict[str, int | float] = {}
    for item in text.split(","):
        key, sep, raw = (part.strip() for part in item.partition("="))
        if not sep or not key or not raw:
            raise ConfigError(f"bad --to item {item.strip()!r}; expected key=value")
        if key not in TARGET_KEYS:
            raise ConfigError(f"unknown --to key {key!r}; expected one of {', '.join(TARGET_KEYS)}")
        if key in overrides:
            raise ConfigError(f"--to key {key!r} given twice")
        overrides[key] = _parse_target_value(key, raw)
    budget = {key: int(overrides.pop(key)) for key in BUDGET_KEYS if key in overrides}
    return TargetSpec(shape=TargetShape(**overrides), **budget)


def _parse_target_value(key: str, raw: str) -> int | float:
    try:
        value: int | float = parse_fraction(raw) if key == "density" else _integer(key, raw)
    except (ValueError, ZeroDivisionError, OverflowError):
        raise ConfigError(f"bad --to value {key}={raw!r}") from None
    if key == "density":
        check_density("--to density", value)
    else:
        require(value >= 1, f"--to {key} must be a positive integer; got {raw}")
    return value


def _integer(key: str, raw: str) -> int:
    """An integer; token counts also as a whole float such as ``2e9``."""
    if key != "tokens":
        return int(raw)
    value = float(raw)
    if not value.is_integer():
        raise ValueError(raw)
    return int(value)


def parse_targets(text: str) -> list[TargetSpec]:
    """Several targets separated by ``;``."""
    return [parse_target(part) for part in text.split(";") if part.strip()] or [parse_target("")]
