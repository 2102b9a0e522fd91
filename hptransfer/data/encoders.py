"""The tokenizers of ``data prepare``: UTF-8 bytes, a byte-level BPE trained here, or a
``tokenizer.json`` file (loaded offline, never fetched from a hub); each as an
:class:`Encoder` that turns a batch of documents into one array of ids."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hptransfer.errors import DataError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

EOT = "<|endoftext|>"  # ends every document where the vocabulary has it
TOKENIZER_FILE = "tokenizer.json"  # a prepared folder's tokenizer (none for bytes)


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
