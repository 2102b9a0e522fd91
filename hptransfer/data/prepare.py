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
The documents and their split are :mod:`hptransfer.data.documents`, the tokenizers
:mod:`hptransfer.data.encoders`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hptransfer.data import tokens
from hptransfer.data.documents import BUILTIN_SHAKESPEARE, separator_pattern, split_documents
from hptransfer.data.encoders import TOKENIZER_FILE, Encoder, load_tokenizer, train_bpe
from hptransfer.errors import ConfigError, DataError

FORMAT = 1  # bump when the same inputs and settings would give different tokens
BATCH_BYTES = 1 << 20  # documents tokenized (and written) together


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
        texts = (doc.text for doc in split_documents(request, notes, want_val=False))
        return train_bpe(int(spec[4:]), texts)
    return load_tokenizer(Path(spec))


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

        for doc in split_documents(request, notes):
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
