"""Builders for each ``data.corpus``: Shakespeare, a local text file, a token folder, digits,
synthetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hptransfer.data import shakespeare, tokens
from hptransfer.data.datasets import ClassificationDataset, TokenDataset
from hptransfer.errors import DataError

BYTE_VOCAB = 256
TEXT_VAL_FRACTION = 0.1  # the last 10% of a text file's bytes
DIGITS_VAL_FRACTION = 0.2
DIGITS_SEED = 0
SYNTHETIC_VOCAB = 32
DIGITS_FEATURES, DIGITS_CLASSES = 64, 10  # 8x8 images of the digits 0-9
# (input, output) sizes per corpus, known without loading it: what ``plan`` builds a model with
IO_SIZES = {
    "shakespeare": (BYTE_VOCAB, BYTE_VOCAB),
    "text": (BYTE_VOCAB, BYTE_VOCAB),
    "synthetic": (SYNTHETIC_VOCAB, SYNTHETIC_VOCAB),
    "digits": (DIGITS_FEATURES, DIGITS_CLASSES),
}
SYNTHETIC_SEED = 0


def io_sizes(corpus: str, path: str | None) -> tuple[int, int]:
    """(input, output) sizes of a corpus without loading it (a token folder's from its
    meta.json): what ``plan`` builds a model with."""
    if corpus == "tokens":
        assert path is not None  # DataConfig requires it
        vocab = tokens.read_meta(Path(path)).vocab_size
        return vocab, vocab
    return IO_SIZES[corpus]


def _bytes_stream(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


def shakespeare_dataset() -> TokenDataset:
    """Byte-level Shakespeare with whole plays held out for validation."""
    train, val = shakespeare.split_plays(shakespeare.load_plays())
    return TokenDataset("shakespeare", _bytes_stream(train), _bytes_stream(val), BYTE_VOCAB)


def text_file_dataset(path: str) -> TokenDataset:
    """Byte-level tokens of a UTF-8 text file; its last 10% is the validation split."""
    try:
        if Path(path).exists() and not Path(path).is_file():  # a device or pipe never ends
            raise DataError(f"text file {path} is not a regular file")
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read text file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # e.g. a NUL byte in the path
        raise DataError(f"cannot read text file {path!r}: {exc}") from None
    if len(data) < 2:  # each split needs at least one byte (seq_len is checked later)
        raise DataError(f"text file {path} is too short ({len(data)} bytes)")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"text file {path} is not UTF-8 (byte {exc.start})") from None
    cut = int(len(data) * (1 - TEXT_VAL_FRACTION))
    return TokenDataset(
        f"text file {path}", _bytes_stream(data[:cut]), _bytes_stream(data[cut:]), BYTE_VOCAB
    )


def token_folder_dataset(path: str) -> TokenDataset:
    """A tokenized corpus: ``train.bin`` and ``val.bin`` memory-mapped (see :mod:`.tokens`)."""
    folder = Path(path)
    meta = tokens.read_meta(folder)
    train, val = (tokens.open_split(folder, split, meta) for split in tokens.SPLITS)
    return TokenDataset(f"token folder {path}", train, val, meta.vocab_size)


def digits_dataset() -> ClassificationDataset:
    """scikit-learn's bundled 8x8 digits, pixels scaled to [0, 1], fixed stratified split."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:
        raise DataError(
            f"corpus digits needs scikit-learn: pip install scikit-learn ({exc})"
        ) from None
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(
        x / 16.0, y, test_size=DIGITS_VAL_FRACTION, random_state=DIGITS_SEED, stratify=y
    )

    def tensors(xs, ys) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.as_tensor(xs, dtype=torch.float32), torch.as_tensor(ys, dtype=torch.int64)

    return ClassificationDataset(
        "digits", tensors(x_train, y_train), tensors(x_val, y_val), DIGITS_CLASSES
    )


def synthetic_dataset(train_tokens: int = 1 << 16, val_tokens: int = 1 << 13) -> TokenDataset:
    """Tokens from a fixed random Markov chain over 32 symbols (a few likely successors each).

    Its entropy rate is well below log(32), so even a tiny model's loss visibly falls.
    """
    generator = torch.Generator().manual_seed(SYNTHETIC_SEED)
    logits = 3.0 * torch.randn(SYNTHETIC_VOCAB, SYNTHETIC_VOCAB, generator=generator)
    cdf = logits.softmax(dim=-1).cumsum(dim=-1)  # row i: P(next <= j | current i)
    chains, length = 256, (train_tokens + val_tokens) // 256
    uniforms = torch.rand(length, chains, 1, generator=generator)
    # 256 independent chains advance together by inverse-CDF sampling, one step per position.
    tokens = torch.empty(length, chains, dtype=torch.int64)
    tokens[0] = torch.randint(SYNTHETIC_VOCAB, (chains,), generator=generator)
    for t in range(1, length):
        # The first j with u <= cdf[j]. (Row indexing with cdf[...] is far slower here.)
        step = (uniforms[t] > cdf.index_select(0, tokens[t - 1])).sum(dim=1)
        tokens[t] = step.clamp_max(SYNTHETIC_VOCAB - 1)  # guards u above a rounded-down cdf
    stream = tokens.T.flatten().to(torch.uint8).numpy()
    return TokenDataset("synthetic", stream[:train_tokens], stream[train_tokens:], SYNTHETIC_VOCAB)
