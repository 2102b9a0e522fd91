"""The documents ``data prepare`` reads, and the split each falls into.

A text file is one document, or several cut at ``--separator``; a JSONL line or a Parquet row
is one; ``builtin:shakespeare`` is the shipped plays, one per play. Each document falls into
the train or the validation split by a seeded draw (:class:`Splitter`), except a text file
that is the only input or that ``--separator`` leaves one document: it is split by position
(:func:`split_by_position`). Inputs stream, so memory stays bounded.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hptransfer.errors import ConfigError, DataError

if TYPE_CHECKING:
    from hptransfer.data.prepare import Request

BUILTIN_SHAKESPEARE = "builtin:shakespeare"  # the shipped corpus, one document per play
BLANK_LINE = "blank"  # --separator blank: documents are separated by blank lines
BLANK_LINE_PATTERN = r"\n[ \t\r\f\v]*\n\s*"


@dataclass
class Document:
    text: str
    end: int  # bytes of the inputs read so far (for the progress line)
    is_val: bool | None = None  # None: drawn by the Splitter; else fixed by the position rule


def separator_pattern(separator: str) -> re.Pattern[str]:
    """``--separator`` compiled: ``blank`` is a blank line, anything else a regex (``^`` and
    ``$`` match at line boundaries)."""
    text = BLANK_LINE_PATTERN if separator == BLANK_LINE else separator
    try:
        return re.compile(text, re.MULTILINE)
    except re.error as exc:
        reason = f"is not a regular expression ({exc})"
        raise ConfigError(f"--separator {separator!r} {reason}") from None


def documents(
    request: Request, notes: list[str] | None = None
) -> Iterator[tuple[str, Iterator[Document]]]:
    """(input, its documents) for each input, in order; how a text file was split by position
    (where the user may not expect it) is appended to ``notes``."""
    for name in request.inputs:
        yield name, _documents(name, request, [] if notes is None else notes)


def _documents(name: str, request: Request, notes: list[str]) -> Iterator[Document]:
    if name == BUILTIN_SHAKESPEARE:
        from hptransfer.data.shakespeare import load_plays

        done = 0
        for text in load_plays().values():
            done += len(text.encode("utf-8"))
            yield Document(text, done)
        return
    path = Path(name)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from _jsonl(path, request.field)
    elif suffix in (".parquet", ".pq"):
        yield from _parquet(path, request.column)
    else:
        yield from _text_documents(path, request, notes)


def _text_documents(path: Path, request: Request, notes: list[str]) -> Iterator[Document]:
    """A text file's documents: cut at ``--separator``, else split by position where it is
    the only input or the separator leaves it one document (see the module docstring)."""
    size, text = _size(path), _read_text(path)
    if not text or (request.separator is None and len(request.inputs) > 1):
        yield Document(text, size)
        return
    if request.separator is not None:
        pieces = _cut(text, separator_pattern(request.separator))
        if len(pieces) > 1:
            for piece, end in pieces:
                yield Document(piece, size * end // len(text))
            return
        notes.append(
            f"--separator {request.separator!r} does not cut {path} into several documents: "
            f"split by position (its last {request.val_fraction:g} is the validation split)"
        )
    train, val = split_by_position(text, request.val_fraction)
    yield Document(train, size * len(train) // len(text), is_val=False)
    yield Document(val, size, is_val=True)


def _cut(text: str, pattern: re.Pattern[str]) -> list[tuple[str, int]]:
    """The non-blank pieces of ``text`` between matches of ``pattern``, each with the offset
    where it ends."""
    pieces, start = [], 0
    for match in pattern.finditer(text):
        pieces.append((text[start : match.start()], match.start()))
        start = match.end()
    pieces.append((text[start:], len(text)))
    return [(piece, end) for piece, end in pieces if piece.strip()]


def split_by_position(text: str, val_fraction: float) -> tuple[str, str]:
    """(train, validation): ``text`` cut at the line boundary nearest to its last
    ``val_fraction`` (at that character where it has no line break)."""
    target = round(len(text) * (1 - val_fraction))
    before = text.rfind("\n", 0, target) + 1  # 0: no line boundary before the target
    after = text.find("\n", target) + 1  # 0: none after it
    bounds = [cut for cut in (before, after) if 0 < cut < len(text)]
    cut = min(bounds, key=lambda b: abs(b - target)) if bounds else target
    return text[:cut], text[cut:]


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"input {path} is not UTF-8 (byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"cannot read input {path}: {exc.strerror or exc}") from None


def _size(path: Path) -> int:
    try:
        if not path.is_file():
            raise DataError(f"input {path} is not a regular file")
        return path.stat().st_size
    except OSError as exc:
        raise DataError(f"cannot read input {path}: {exc.strerror or exc}") from None


def _jsonl(path: Path, field: str) -> Iterator[Document]:
    _size(path)
    done = 0
    with _open(path) as lines:
        for number, line in enumerate(lines, 1):
            done += len(line)
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise DataError(f"{where}: not a JSON line ({exc})") from None
            if not isinstance(record, dict) or field not in record:
                raise DataError(f"{where}: no field {field!r} (choose it with --field)")
            if not isinstance(record[field], str):
                raise DataError(f"{where}: field {field!r} is not a string")
            yield Document(record[field], done)


@contextlib.contextmanager
def _open(path: Path) -> Iterator[Iterator[bytes]]:
    try:
        with path.open("rb") as handle:
            yield handle
    except OSError as exc:
        raise DataError(f"cannot read input {path}: {exc.strerror or exc}") from None


def _parquet(path: Path, column: str) -> Iterator[Document]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    size = _size(path)
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"input {path} is not a readable Parquet file ({exc})") from None
    if column not in parquet.schema_arrow.names:
        raise DataError(f"input {path} has no column {column!r} (choose it with --column)")
    kind = parquet.schema_arrow.field(column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DataError(f"input {path}: column {column!r} is {kind}, not text")
    groups = max(1, parquet.num_row_groups)
    for group in range(parquet.num_row_groups):
        texts = parquet.read_row_group(group, columns=[column]).column(0).to_pylist()
        for text in texts:
            if text is not None:
                yield Document(text, size * (group + 1) // groups)


class Splitter:
    """Document i goes to validation with probability ``fraction``, from ``seed`` alone."""

    def __init__(self, fraction: float, seed: int):
        self.rng = np.random.default_rng(seed)
        self.fraction = fraction

    def is_val(self) -> bool:
        return bool(self.rng.random() < self.fraction)


def split_documents(
    request: Request, notes: list[str], want_val: bool | None = None
) -> Iterator[Document]:
    """Every document with its split (drawn unless fixed by position); only one split's if
    ``want_val`` is given."""
    splitter = Splitter(request.val_fraction, request.seed)
    base = 0  # bytes of the inputs before this one
    for name, docs in documents(request, notes):
        empty, end = True, 0
        for doc in docs:
            empty, end = empty and not doc.text, doc.end
            doc.end += base
            if doc.is_val is None:
                doc.is_val = splitter.is_val()
            if want_val is None or doc.is_val == want_val:
                yield doc
        if empty:
            raise DataError(f"input {name} holds no text")
        base += end
