"""The two dataset shapes: token streams (for the GPT) and feature/label tables (for the MLP).

Training batches are drawn with the caller's ``torch.Generator`` only; validation batches
use no randomness at all, so they are the same in every call, run and process.
"""

from __future__ import annotations

import numpy as np
import torch

from hptransfer.errors import DataError


class TokenDataset:
    """Next-token prediction over a train and a validation stream of token ids."""

    kind = "text"

    def __init__(self, name: str, train: np.ndarray, val: np.ndarray, vocab_size: int):
        self.name = name
        # (N,) unsigned token ids, in memory or a read-only np.memmap of a token file: a batch
        # reads only its own windows, gathered into int64 tensors.
        self.train = train
        self.val = val
        self.input_size = vocab_size
        self.output_size = vocab_size

    def check_seq_len(self, seq_len: int) -> None:
        shortest = min(len(self.train), len(self.val))
        if shortest <= seq_len:
            raise DataError(
                f"{self.name} is too short for seq_len {seq_len}: its smaller split has "
                f"{shortest} tokens (needs more than {seq_len})"
            )

    def train_batch(
        self, batch_size: int, seq_len: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows of the train stream: x, y int64 (B, T) with y[:, t] = x[:, t + 1]."""
        self.check_seq_len(seq_len)
        starts = torch.randint(len(self.train) - seq_len, (batch_size,), generator=generator)
        return _windows(self.train, starts, seq_len)

    def val_batches(
        self, batch_size: int, seq_len: int, n_batches: int
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``n_batches`` batches of windows spaced evenly over the validation stream."""
        self.check_seq_len(seq_len)
        starts = torch.linspace(0, len(self.val) - seq_len - 1, batch_size * n_batches)
        starts = starts.round().long().view(n_batches, batch_size)
        return [_windows(self.val, row, seq_len) for row in starts]


def _windows(
    stream: np.ndarray, starts: torch.Tensor, seq_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    # (B, T + 1) positions: row b is starts[b] … starts[b] + T; x is a row's first T tokens,
    # y its last T. Fancy indexing copies just these tokens (on a memmap: reads their pages).
    positions = starts.numpy()[:, None] + np.arange(seq_len + 1)
    window = torch.from_numpy(stream[positions].astype(np.int64))
    return window[:, :-1].contiguous(), window[:, 1:].contiguous()


class ClassificationDataset:
    """Fixed-size feature vectors with integer class labels."""

    kind = "classification"

    def __init__(
        self,
        name: str,
        train: tuple[torch.Tensor, torch.Tensor],
        val: tuple[torch.Tensor, torch.Tensor],
        n_classes: int,
    ):
        self.name = name
        self.train_x, self.train_y = train  # (N, F) float32, (N,) int64
        self.val_x, self.val_y = val
        self.input_size = self.train_x.shape[1]
        self.output_size = n_classes

    def train_batch(
        self, batch_size: int, seq_len: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Examples drawn with replacement: x float32 (B, F), y int64 (B,); seq_len is unused."""
        index = torch.randint(len(self.train_y), (batch_size,), generator=generator)
        return self.train_x.index_select(0, index), self.train_y.index_select(0, index)

    def val_batches(
        self, batch_size: int, seq_len: int, n_batches: int
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The validation set in order, in ``n_batches`` batches, wrapping round if it is short."""
        index = (torch.arange(batch_size * n_batches) % len(self.val_y)).view(n_batches, -1)
        return [(self.val_x.index_select(0, i), self.val_y.index_select(0, i)) for i in index]
