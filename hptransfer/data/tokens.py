"""Tokenized corpora on disk: a folder of ``train.bin``, ``val.bin`` and ``meta.json``.

The layout nanoGPT's prepare scripts write: each ``.bin`` is a flat array of little-endian
unsigned token ids (``uint16`` or ``uint32``); ``meta.json`` names the dtype and the
vocabulary size, and (when ``hptransfer data prepare`` wrote it) the token counts and the
tokenizer's identity. The token files are memory-mapped (read-only, no readahead): opening
one reads nothing, and a batch reads only the pages of its own windows, so a corpus may be
far larger than memory.

Checked on opening (each failure is a one-line :class:`DataError`): ``meta.json`` present
and well-formed, each file a whole number of tokens (matching the counts in ``meta.json``
when given), and no token id ≥ the vocabulary in a sample of each file.
"""

from __future__ import annotations

import json
import mmap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hptransfer.errors import DataError

META_FILE = "meta.json"
SPLITS = ("train", "val")
DTYPES = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}
# Id check on opening: this many evenly spaced runs of consecutive tokens per file (a run
# touches one or two pages, so the check reads well under a megabyte of any file).
SAMPLE_RUNS, SAMPLE_RUN_TOKENS = 256, 512


@dataclass(frozen=True)
class TokenMeta:
    """What ``meta.json`` says about a token folder.

    ``tokenizer``: the tokenizer's identity (``name``, ``vocab_size``, ``sha256`` of its JSON
    serialisation; empty when the folder was made elsewhere and does not say). ``source``:
    how ``data prepare`` made the folder (inputs and settings), for its no-op re-run.
    """

    vocab_size: int
    dtype: str
    train_tokens: int | None = None
    val_tokens: int | None = None
    tokenizer: dict[str, Any] = field(default_factory=dict)
    eot_id: int | None = None
    source: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def identity(self) -> dict[str, Any]:
        """What proxy and target must share: the vocabulary and the tokenizer."""
        return {"vocab_size": self.vocab_size, "tokenizer": self.tokenizer}


BYTE_CORPORA = ("shakespeare", "text")  # UTF-8 bytes: vocabulary 256


def data_identity(corpus: str, path: str | None) -> dict[str, Any]:
    """What proxy and target must share: the corpus kind, vocabulary and tokenizer (name and
    sha256 for a token folder, from its meta.json). Not the documents themselves: a target
    may train on other text tokenized the same way.

    Reads only meta.json; raises :class:`DataError` if a token folder's is unusable.
    """
    if corpus == "tokens":
        assert path is not None  # DataConfig requires it
        return {"corpus": corpus, **read_meta(Path(path)).identity()}
    if corpus in BYTE_CORPORA:
        return {"corpus": corpus, "vocab_size": 256, "tokenizer": {"name": "bytes"}}
    return {"corpus": corpus}


def same_tokens(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two :func:`data_identity` records tokenize alike (a byte corpus and a
    ``bytes`` token folder do; sha256 compared when both record one)."""
    ta, tb = a.get("tokenizer") or {}, b.get("tokenizer") or {}
    if (ta.get("name"), a.get("vocab_size")) != (tb.get("name"), b.get("vocab_size")):
        return False
    if not ta and a.get("corpus") != b.get("corpus"):  # digits, synthetic: no tokenizer
        return False
    return ta.get("sha256") is None or tb.get("sha256") is None or ta["sha256"] == tb["sha256"]


def describe_identity(identity: dict[str, Any]) -> str:
    """``tokens (bpe:4096, vocabulary 4096)``."""
    tokenizer = (identity.get("tokenizer") or {}).get("name")
    if tokenizer is None:
        return str(identity.get("corpus"))
    return f"{identity.get('corpus')} ({tokenizer}, vocabulary {identity.get('vocab_size')})"


def bin_path(folder: Path, split: str) -> Path:
    return folder / f"{split}.bin"


def dtype_for(vocab_size: int) -> str:
    """The smallest stored dtype that holds ids below ``vocab_size``."""
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


def read_meta(folder: Path) -> TokenMeta:
    """``folder/meta.json`` parsed and validated (DataError naming the file otherwise)."""
    path = folder / META_FILE
    if not folder.is_dir():
        raise DataError(f"token folder {folder} is not a directory")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"{path} is missing: a token folder needs meta.json (vocab_size, dtype); "
            "`hptransfer data prepare` writes one"
        ) from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc})") from None
    return _parse_meta(doc, path)


def _parse_meta(doc: Any, path: Path) -> TokenMeta:
    if not isinstance(doc, dict):
        raise DataError(f"{path} must hold a JSON object; got {type(doc).__name__}")
    known = {f for f in TokenMeta.__dataclass_fields__}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise DataError(f"{path}: unknown key(s) {', '.join(unknown)}")
    for key in ("vocab_size", "dtype"):
        if key not in doc:
            raise DataError(f"{path} lacks {key!r}")
    if doc["dtype"] not in DTYPES:
        raise DataError(f"{path}: dtype must be one of {', '.join(DTYPES)}; got {doc['dtype']!r}")
    for key, low in (("vocab_size", 1), ("train_tokens", 0), ("val_tokens", 0), ("eot_id", 0)):
        value = doc.get(key, low)
        if value is None and key != "vocab_size":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise DataError(f"{path}: {key} must be an integer >= {low}; got {value!r}")
    limit = 1 << (8 * DTYPES[doc["dtype"]].itemsize)
    if doc["vocab_size"] > limit:
        raise DataError(f"{path}: vocab_size {doc['vocab_size']} does not fit {doc['dtype']}")
    for key in ("tokenizer", "source"):
        if not isinstance(doc.get(key, {}), dict):
            raise DataError(f"{path}: {key} must be a JSON object")
    return TokenMeta(**doc)


def open_split(folder: Path, split: str, meta: TokenMeta) -> np.ndarray:
    """The split's token file as a read-only memmap, its size and a sample of ids checked."""
    path = bin_path(folder, split)
    dtype = DTYPES[meta.dtype]
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError(f"token file {path} is missing") from None
    except OSError as exc:
        raise DataError(f"cannot read token file {path}: {exc.strerror or exc}") from None
    if size % dtype.itemsize:
        raise DataError(
            f"token file {path} has {size} bytes, not a multiple of {meta.dtype}'s "
            f"{dtype.itemsize}: truncated, or a different dtype than meta.json's"
        )
    count = size // dtype.itemsize
    expected = getattr(meta, f"{split}_tokens")
    if expected is not None and expected != count:
        raise DataError(f"token file {path} holds {count} tokens; meta.json says {expected}")
    if count < 2:
        raise DataError(f"token file {path} holds {count} tokens (needs at least 2)")
    tokens = _map(path, dtype)
    _check_ids(tokens, meta.vocab_size, path)
    return tokens


def _map(path: Path, dtype: np.dtype) -> np.ndarray:
    """A read-only memory map of ``path`` as a flat array, without readahead.

    Windows are read at random places: the kernel's default readahead would pull in (or,
    over a sparse file's holes, zero-fill) up to megabytes around every page a window
    touches, which made opening a 4 GiB file take seconds. ``np.memmap`` has no hook for
    ``madvise``, so the map is made here and wrapped by ``np.frombuffer`` (which keeps it
    open for as long as the array lives).
    """
    try:
        with path.open("rb") as file:
            mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise DataError(f"cannot map token file {path}: {exc.strerror or exc}") from None
    mapped.madvise(mmap.MADV_RANDOM)
    return np.frombuffer(mapped, dtype=dtype)


def _check_ids(tokens: np.ndarray, vocab_size: int, path: Path) -> None:
    run = min(SAMPLE_RUN_TOKENS, len(tokens))
    starts = np.linspace(0, len(tokens) - run, min(SAMPLE_RUNS, len(tokens) - run + 1))
    sample = np.concatenate([tokens[s : s + run] for s in starts.astype(np.int64)])
    largest = int(sample.max())
    if largest >= vocab_size:
        raise DataError(
            f"token file {path} holds id {largest}, not below meta.json's vocab_size "
            f"{vocab_size} (checked in a sample): wrong vocab_size or dtype"
        )
