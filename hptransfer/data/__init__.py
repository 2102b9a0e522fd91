"""Data sources behind one small interface: ``load_dataset(DataConfig) -> Dataset``.

``shakespeare`` and ``text`` are byte-level token streams (vocabulary 256) for the GPT,
``tokens`` a tokenized corpus on disk (memory-mapped; vocabulary from its ``meta.json``),
``synthetic`` a tiny 32-token stream for fast tests, ``digits`` an 8x8-image classification
set for the MLP. Everything is offline.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Protocol

from hptransfer.config import DataConfig

if TYPE_CHECKING:  # torch is imported with the sources, so data.tokens stays light (fit)
    import torch

__all__ = ["DataConfig", "Dataset", "load_dataset"]


class Dataset(Protocol):
    """What training needs from a data source.

    ``kind`` is "text" (``x``, ``y`` int64 (B, T), ``y`` is ``x`` shifted by one) or
    "classification" (``x`` float32 (B, F), ``y`` int64 (B,); ``seq_len`` is ignored).
    ``train_batch`` draws with ``generator`` only; ``val_batches`` is the same fixed set in
    every call, run and process.
    """

    input_size: int  # vocabulary size or number of features
    output_size: int  # vocabulary size or number of classes
    kind: str

    def train_batch(
        self, batch_size: int, seq_len: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def val_batches(
        self, batch_size: int, seq_len: int, n_batches: int
    ) -> list[tuple[torch.Tensor, torch.Tensor]]: ...


@functools.lru_cache(maxsize=16)
def load_dataset(cfg: DataConfig) -> Dataset:
    """The dataset for ``cfg``, cached per process; raises DataError if it is unusable.

    A text source too short for ``cfg.seq_len`` is rejected here rather than mid-training.
    """
    from hptransfer.data.datasets import TokenDataset

    dataset = _load_source(cfg.corpus, cfg.path)
    if isinstance(dataset, TokenDataset):
        dataset.check_seq_len(cfg.seq_len)
    return dataset


@functools.lru_cache(maxsize=8)
def _load_source(corpus: str, path: str | None) -> Dataset:
    # Shared by configs that differ only in batch shape, so each source is read once.
    from hptransfer.data import sources

    if corpus == "shakespeare":
        return sources.shakespeare_dataset()
    if corpus == "text":
        assert path is not None  # DataConfig requires it
        return sources.text_file_dataset(path)
    if corpus == "tokens":
        assert path is not None  # DataConfig requires it
        return sources.token_folder_dataset(path)
    if corpus == "digits":
        return sources.digits_dataset()
    if corpus == "synthetic":
        return sources.synthetic_dataset()
    raise AssertionError(f"unhandled corpus {corpus!r}")  # DataConfig validates the name
