"""Typed fields of a YAML mapping: keys checked against a dataclass, values against its types.

:class:`FieldReader` is the sweep spec's reader (:mod:`hptransfer.sweep.parse`); every error
names the file and the dotted key (``sweeps/x.yaml: search.space.lr.low: ...``), and an
unknown key gets a "did you mean" suggestion.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from hptransfer.errors import ConfigError, did_you_mean

INT64 = 2**63  # integers are stored in int64 Parquet columns
TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def field_names(cls: type) -> tuple[str, ...]:
    """The field names of dataclass ``cls``: the keys its YAML section allows."""
    return tuple(f.name for f in dataclasses.fields(cls))


def describe(value: Any) -> str:
    """A user's value for an error message: its repr, cut at 40 characters, and its type."""
    text = repr(value)
    return f"{text if len(text) <= 40 else text[:37] + '...'} ({type(value).__name__})"


def _float_or_none(text: str) -> float | None:
    # YAML 1.1 reads ``1e-3`` (no dot) as a string; accept it where a number is expected.
    try:
        return float(text)
    except ValueError:
        return None


class FieldReader:
    """Reads the sections of one YAML document; every error names ``source`` and the key."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, message: str) -> typing.NoReturn:
        raise ConfigError(f"{self.source}: {key}: {message}")

    def mapping(self, key: str, raw: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
        """``raw`` itself, checked to be a mapping with only ``allowed`` keys."""
        if not isinstance(raw, dict):
            self.fail(key, f"expected a mapping, got {describe(raw)}")
        for name in raw:
            if name not in allowed:
                shown = name if isinstance(name, str) and name.isidentifier() else repr(name)[:40]
                where = shown if key == "(top level)" else f"{key}.{shown}"
                self.fail(
                    where,
                    f"unknown key{did_you_mean(str(name), allowed)} "
                    f"(allowed: {', '.join(allowed)})",
                )
        return raw

    def build(self, key: str, cls: type, raw: Any, **extra: Any) -> Any:
        """Construct dataclass ``cls`` from mapping ``raw``, checking keys and field types."""
        hints = typing.get_type_hints(cls)
        section = self.mapping(key, raw, field_names(cls))
        kwargs = {
            name: self.coerce(f"{key}.{name}", value, hints[name])
            for name, value in section.items()
        }
        return self.checked(lambda: cls(**kwargs, **extra))

    def checked(self, make: typing.Callable[[], Any]) -> Any:
        """Run a validating constructor, prefixing its ConfigError with the file name."""
        try:
            return make()
        except ConfigError as exc:
            raise ConfigError(f"{self.source}: {exc}") from None

    def coerce(self, key: str, value: Any, hint: Any) -> Any:
        """Check ``value`` against a field type (int, float, bool, str, Optional, tuple)."""
        args = typing.get_args(hint)
        if type(None) in args:
            if value is None:
                return None
            hint = next(arg for arg in args if arg is not type(None))
        if typing.get_origin(hint) is tuple:
            items = self.number_list(key, value, float)
            if len(items) != len(typing.get_args(hint)):
                self.fail(key, f"expected a list of {len(typing.get_args(hint))} numbers")
            return items
        if hint is float and isinstance(value, str):
            value = _float_or_none(value) if _float_or_none(value) is not None else value
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and hint is int and isinstance(value, int) and not -INT64 <= value < INT64:
            self.fail(key, f"{describe(value)} is out of range (at most 2^63 in magnitude)")
        if number and hint is float and isinstance(value, int) and abs(value) > 2**1023:
            self.fail(key, f"{describe(value)} is out of range for a float")
        ok = {
            int: number and isinstance(value, int),
            float: number,
            bool: isinstance(value, bool),
            str: isinstance(value, str),
        }[hint]
        if not ok:
            self.fail(key, f"expected {TYPE_NAMES[hint]}, got {describe(value)}")
        return float(value) if hint is float else value

    def distinct(self, key: str, values: tuple[Any, ...]) -> tuple[Any, ...]:
        if len(set(values)) != len(values):
            self.fail(key, f"lists a value twice: {list(values)}")
        return values

    def number_list(self, key: str, raw: Any, kind: type) -> tuple[Any, ...]:
        """A scalar or a non-empty list of numbers of type ``kind``."""
        if not isinstance(raw, list):
            return (self.coerce(key, raw, kind),)
        if not raw:
            self.fail(key, "is empty")
        return tuple(self.coerce(f"{key}[{i}]", item, kind) for i, item in enumerate(raw))
