"""``hptransfer data prepare``: text, JSONL or Parquet documents -> a token folder.

Documents stream from the inputs (a text file is one, or several cut at ``--separator``; a
JSONL line or a Parquet row is one), each falls into the train or the validation split by a
seeded draw (so a document is never cut in two), and is tokenized by one of:

- ``bytes``: its UTF-8 bytes (vocabulary 256, the byte-level corpora's tokens);
- ``bpe:<vocab>``: a byte-level BPE that Hugging Face ``tokenizers`` trains here, offline, on
  the train split (``<|endoftext|>`` ends every document);
- a ``tokenizer.json`` file (loaded, never fetched from a hub; ``<|endoftext|>`` ends every
  document if its vocabulary has that token).

A text file that is the only input, or that ``--separator`` does not cut into several
documents, is one document split by position instead: its last ``--val-fraction`` (cut at
the line boundary nearest to it) is the validation split, the rest the train split.

Memory stays bounded: documents are read, tokenized and appended to ``train.bin`` /
``val.bin`` a batch at a time (BPE training streams too, keeping word counts). Everything is
written into a temporary folder beside ``--out`` that is renamed into place at the end, so an
error or Ctrl-C leaves no partial output. ``meta.json`` records the tokenizer's identity
(name, vocabulary, sha256 of its JSON) and how the folder was made (each input's sha256 and
size, the settings): re-running with the same inputs and settings finds it and does nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hptransfer.data import tokens
from hptransfer.errors import ConfigError, DataError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

FORMAT = 1  # bump when the same inputs and settings would give different tokens
BUILTIN_SHAKESPEARE = "builtin:shakespeare"  # the shipped corpus, one document per play
EOT = "<|endoftext|>"
BATCH_BYTES = 1 << 20  # documents tokenized (and written) together
TOKENIZER_FILE = "tokenizer.json"
BLANK_LINE = "blank"  # --separator blank: documents are separated by blank lines
BLANK_LINE_PATTERN = r"\n[ \t\r\f\v]*\n\s*"


@dataclass(frozen=True)
class Request:
    """What to prepare; validated on construction (the CLI's flags)."""

    inputs: tuple[str, ...]
    out: Path
    tokenizer: str = "bytes"
    field: str = "text"
    column: str = "text"
    val_fraction: float = 0.1
    seed: int = 0
    force: bool = False
    separator: str | None = None  # text files: "blank" (a blank line) or a regular expression

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ConfigError("data prepare needs at least one input")
        if self.separator is not None:
            separator_pattern(self.separator)
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"--val-fraction must be in (0, 1); got {self.val_fraction}")
        if self.tokenizer.startswith("bpe:"):
            vocab = self.tokenizer[4:]
            if not vocab.isdigit() or not 257 <= int(vocab) <= 1 << 20:
                raise ConfigError(
                    f"--tokenizer {self.tokenizer}: the BPE vocabulary must be an integer in "
                    f"[257, {1 << 20}], e.g. bpe:4096"
                )


@dataclass
class Outcome:
    meta: tokens.TokenMeta
    folder: Path
    input_bytes: int
    seconds: float
    skipped: bool  # already prepared from the same inputs and settings
    notes: tuple[str, ...] = ()  # how a text file was split, where the user may not expect it


# -- documents ------------------------------------------------------------------------------


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


# -- tokenizers -----------------------------------------------------------------------------


class Encoder:
    """A tokenizer as ``data prepare`` uses it: a batch of texts -> one array of ids."""

    def __init__(self, name: str, tokenizer: Tokenizer | None = None):
        self.name = name
        self.tokenizer = tokenizer
        self.vocab_size = 256 if tokenizer is None else tokenizer.get_vocab_size()
        self.eot_id = None if tokenizer is None else tokenizer.token_to_id(EOT)

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.tokenizer is None:
            return np.frombuffer("".join(texts).encode("utf-8"), dtype=np.uint8)
        end = [] if self.eot_id is None else [self.eot_id]
        rows = [np.array(enc.ids + end) for enc in self.tokenizer.encode_batch_fast(texts)]
        return np.concatenate(rows or [np.zeros(0)]).astype(np.int64)

    def identity(self) -> dict[str, Any]:
        """Name, vocabulary and the sha256 of the tokenizer's JSON (bytes: of its name)."""
        text = self.name if self.tokenizer is None else self.tokenizer.to_str()
        return {
            "name": self.name,
            "vocab_size": self.vocab_size,
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        }


def load_tokenizer(path: Path) -> Encoder:
    """A ``tokenizer.json``; DataError if it is unreadable or not a tokenizer."""
    from tokenizers import Tokenizer

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise DataError(f"cannot read tokenizer {path}: {reason or exc}") from None
    try:
        tokenizer = Tokenizer.from_str(text)
    except Exception as exc:  # tokenizers raises plain Exception for any malformed file
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path} is not a Hugging Face tokenizer.json ({reason})") from None
    return Encoder(path.name, tokenizer)


def train_bpe(vocab_size: int, texts: Iterator[str]) -> Encoder:
    """A byte-level BPE trained on ``texts`` (GPT-2's pre-tokenizer; decodes back exactly)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return Encoder(f"bpe:{vocab_size}", tokenizer)


def decode(folder: Path, ids: np.ndarray) -> str:
    """The text of ``ids`` from a prepared folder (its tokenizer.json, or bytes)."""
    path = folder / TOKENIZER_FILE
    if not path.exists():
        return bytes(ids.astype(np.uint8)).decode("utf-8")
    return load_tokenizer(path).tokenizer.decode(ids.tolist(), skip_special_tokens=False)


# -- the split and the run ------------------------------------------------------------------


class Splitter:
    """Document i goes to validation with probability ``fraction``, from ``seed`` alone."""

    def __init__(self, fraction: float, seed: int):
        self.rng = np.random.default_rng(seed)
        self.fraction = fraction

    def is_val(self) -> bool:
        return bool(self.rng.random() < self.fraction)


def fingerprint(request: Request) -> dict[str, Any]:
    """How the folder is made: each input's size and sha256, and the settings."""
    inputs = [_input_fingerprint(name) for name in request.inputs]
    spec = request.tokenizer
    tokenizer: dict[str, Any] = {"spec": spec}
    if not (spec == "bytes" or spec.startswith("bpe:")):
        tokenizer["sha256"] = _input_fingerprint(spec, what="tokenizer")["sha256"]
    return {
        "format": FORMAT,
        "inputs": inputs,
        "tokenizer": tokenizer,
        "field": request.field,
        "column": request.column,
        "val_fraction": request.val_fraction,
        "seed": request.seed,
        # absent unless given: folders prepared before --separator keep their fingerprint
        **({} if request.separator is None else {"separator": request.separator}),
    }


def _input_fingerprint(name: str, what: str = "input") -> dict[str, Any]:
    if name == BUILTIN_SHAKESPEARE:
        from hptransfer.data.shakespeare import CORPUS_SHA256, load_plays

        size = sum(len(text.encode("utf-8")) for text in load_plays().values())
        return {"name": name, "bytes": size, "sha256": CORPUS_SHA256}
    path = Path(name)
    digest = hashlib.sha256()
    if not path.exists():
        raise DataError(f"{what} {path} not found")
    if not path.is_file():
        raise DataError(f"{what} {path} is not a regular file")
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def prepare(request: Request, progress: Callable[[int, int], None] | None = None) -> Outcome:
    """Prepare ``request.out`` (or find it already prepared); see the module docstring.

    ``progress(bytes read, total bytes)`` is called as the inputs are tokenized.
    """
    start = time.monotonic()
    source = fingerprint(request)
    total = sum(item["bytes"] for item in source["inputs"])
    existing = _existing(request.out)
    if existing is not None and existing.source == source:
        return Outcome(existing, request.out, total, time.monotonic() - start, skipped=True)
    if request.out.exists() and not request.force:
        raise DataError(
            f"{request.out} exists and was not prepared from these inputs and settings; "
            "choose another --out, or --force to replace it"
        )
    notes: list[str] = []
    encoder = _encoder(request, notes)
    staging = request.out.with_name(f".{request.out.name}.partial-{os.getpid()}")
    try:
        staging.mkdir(parents=True)
        meta = _write(request, encoder, staging, source, total, progress, notes)
        _replace(staging, request.out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise DataError(f"cannot write {request.out}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    seconds = time.monotonic() - start
    return Outcome(meta, request.out, total, seconds, False, tuple(dict.fromkeys(notes)))


def _existing(folder: Path) -> tokens.TokenMeta | None:
    if not (folder / tokens.META_FILE).is_file():
        return None
    try:
        return tokens.read_meta(folder)
    except DataError:
        return None  # not ours, or damaged: prepared again (with --force)


def _encoder(request: Request, notes: list[str]) -> Encoder:
    spec = request.tokenizer
    if spec == "bytes":
        return Encoder("bytes")
    if spec.startswith("bpe:"):
        texts = (doc.text for doc in _split_documents(request, notes, want_val=False))
        return train_bpe(int(spec[4:]), texts)
    return load_tokenizer(Path(spec))


def _split_documents(
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


def _write(
    request: Request,
    encoder: Encoder,
    folder: Path,
    source: dict[str, Any],
    total: int,
    progress: Callable[[int, int], None] | None,
    notes: list[str],
) -> tokens.TokenMeta:
    dtype = tokens.DTYPES[tokens.dtype_for(encoder.vocab_size)]
    counts = {"train": 0, "val": 0}
    with contextlib.ExitStack() as stack:
        files = {
            split: stack.enter_context(tokens.bin_path(folder, split).open("wb"))
            for split in tokens.SPLITS
        }
        batches: dict[str, list[str]] = {"train": [], "val": []}
        sizes = {"train": 0, "val": 0}

        def flush(split: str) -> None:
            ids = encoder.encode(batches[split])
            ids.astype(dtype).tofile(files[split])
            counts[split] += len(ids)
            batches[split], sizes[split] = [], 0

        for doc in _split_documents(request, notes):
            split = "val" if doc.is_val else "train"
            batches[split].append(doc.text)
            sizes[split] += len(doc.text)
            if sizes[split] >= BATCH_BYTES:
                flush(split)
                if progress:
                    progress(doc.end, total)
        for split in tokens.SPLITS:
            flush(split)
    for split in tokens.SPLITS:
        if counts[split] < 2:
            raise DataError(
                f"the {split} split got {counts[split]} tokens: give more documents, cut them "
                "with --separator or change --val-fraction (documents are never cut between "
                "the splits)"
            )
    if encoder.tokenizer is not None:
        encoder.tokenizer.save(str(folder / TOKENIZER_FILE))
    meta = tokens.TokenMeta(
        vocab_size=encoder.vocab_size,
        dtype=tokens.dtype_for(encoder.vocab_size),
        train_tokens=counts["train"],
        val_tokens=counts["val"],
        tokenizer=encoder.identity(),
        eot_id=encoder.eot_id,
        source=source,
    )
    text = json.dumps(meta.to_json(), indent=1) + "\n"
    (folder / tokens.META_FILE).write_text(text, encoding="utf-8")
    if progress:
        progress(total, total)
    return meta


def _replace(staging: Path, out: Path) -> None:
    """Rename the finished folder into place (the old one, with --force, removed after)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old)


def progress_printer(stream=sys.stderr) -> Callable[[int, int], None]:
    """A ``\\r``-updated progress bar on a terminal (nothing when ``stream`` is not one)."""
    start = time.monotonic()
    if not stream.isatty():
        return lambda done, total: None

    def show(done: int, total: int) -> None:
        elapsed = max(time.monotonic() - start, 1e-9)
        share = done / total if total else 1.0
        bar = "#" * int(30 * share)
        print(
            f"\r[{bar:<30}] {share:6.1%}  {done / 2**20:,.1f}/{total / 2**20:,.1f} MiB  "
            f"{done / 2**20 / elapsed:,.1f} MiB/s",
            end="\n" if done >= total else "",
            file=stream,
            flush=True,
        )

    return show
