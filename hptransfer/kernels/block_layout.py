"""The non-empty ``b × b`` blocks of a static mask, in the orders the block-sparse kernels walk.

Pure torch, so a layer can build (and cache) its layout without importing Triton. The mask is
static, so a layout is computed once per mask and device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hptransfer.config import BLOCK_SIZES


@dataclass(frozen=True, eq=False)
class BlockLayout:
    """Non-empty blocks of an ``(out, in)`` mask cut into ``block × block`` tiles.

    Index tensors are int32 on the mask's device. ``row_idx[row_ptr[r]:row_ptr[r + 1]]`` are
    the non-empty column blocks of row block ``r`` (CSR: the forward product), ``col_idx``
    likewise per column block (CSC: ``dX``), and ``(tile_rows[i], tile_cols[i])`` lists every
    non-empty block (``dW``). ``full`` says every non-empty block is all ones inside the
    matrix, so the kernels can skip loading the element mask.
    """

    block: int
    shape: tuple[int, int]
    row_ptr: torch.Tensor
    row_idx: torch.Tensor
    col_ptr: torch.Tensor
    col_idx: torch.Tensor
    tile_rows: torch.Tensor
    tile_cols: torch.Tensor
    full: bool

    @property
    def nnz(self) -> int:
        """Number of non-empty blocks."""
        return self.tile_rows.numel()

    @property
    def grid(self) -> tuple[int, int]:
        """Blocks per column and per row (edge blocks may be partial)."""
        return self.row_ptr.numel() - 1, self.col_ptr.numel() - 1

    @property
    def block_density(self) -> float:
        rows, cols = self.grid
        return self.nnz / (rows * cols)

    @property
    def device(self) -> torch.device:
        return self.row_ptr.device


@torch.no_grad()
def block_layout(mask: torch.Tensor, block: int) -> BlockLayout:
    """The block layout of a bool/uint8 ``(out, in)`` mask."""
    if block not in BLOCK_SIZES:
        raise ValueError(f"block must be one of {BLOCK_SIZES}; got {block}")
    if mask.dim() != 2:
        raise ValueError(f"mask must be 2-D (out, in); got shape {tuple(mask.shape)}")
    out_features, in_features = mask.shape
    rows, cols = -(-out_features // block), -(-in_features // block)
    pad = (0, cols * block - in_features, 0, rows * block - out_features)
    # (rows·b, cols·b) -> (rows, b, cols, b): one entry per block, reduced over its elements.
    kept = F.pad(mask.to(torch.uint8), pad, value=0).view(rows, block, cols, block)
    nonempty = kept.amax(dim=(1, 3)).bool()
    # Outside the matrix counts as kept, so clipped edge blocks can still be full.
    filled = F.pad(mask.to(torch.uint8), pad, value=1).view(rows, block, cols, block)
    full = bool((filled.amin(dim=(1, 3)).bool() | ~nonempty).all())

    by_row = nonempty.nonzero()  # (nnz, 2), row-major order
    by_col = nonempty.t().nonzero()  # (nnz, 2) as (col, row), column-major order

    def int32(t: torch.Tensor) -> torch.Tensor:
        return t.to(torch.int32).contiguous()

    def offsets(counts: torch.Tensor) -> torch.Tensor:
        return int32(F.pad(counts.cumsum(0), (1, 0)))

    return BlockLayout(
        block=block,
        shape=(out_features, in_features),
        row_ptr=offsets(nonempty.sum(1)),
        row_idx=int32(by_row[:, 1]),
        col_ptr=offsets(nonempty.sum(0)),
        col_idx=int32(by_col[:, 1]),
        tile_rows=int32(by_row[:, 0]),
        tile_cols=int32(by_row[:, 1]),
        full=full,
    )
