"""Static random sparse masks and the masked linear layer.

A mask is drawn once, at construction, from a seeded generator and stored as a bool buffer, so
it is saved and restored with the model's ``state_dict`` (a reloaded model never draws a new
one). Masked weights are kept at exactly zero: zeroed at init and on load, and their gradient
is zero, so no optimizer (Adam, AdamW, SGD with momentum) can revive them.
"""

from __future__ import annotations

import torch
from torch import nn

from hptransfer.kernels import BlockLayout, block_layout, masked_linear, resolve_backend


def draw_mask(
    out_features: int,
    in_features: int,
    density: float,
    *,
    kind: str = "random",
    block: int = 64,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A bool mask of shape (out, in) with ``round(density · size)`` ones.

    ``random``: unstructured, exact count over the whole matrix. ``row_balanced``: the same
    count in every row. ``block``: whole ``block × block`` tiles kept or dropped (edge tiles
    may be partial), the structured case SμPar's theory does not cover.
    """
    if kind == "random":
        return _exact_count_mask(out_features * in_features, density, generator).view(
            out_features, in_features
        )
    if kind == "row_balanced":
        keep = max(1, round(density * in_features))
        order = torch.rand(out_features, in_features, generator=generator).argsort(dim=1)
        return order < keep
    if kind == "block":
        rows, cols = -(-out_features // block), -(-in_features // block)
        tiles = _exact_count_mask(rows * cols, density, generator).view(rows, cols)
        full = tiles.repeat_interleave(block, 0).repeat_interleave(block, 1)
        return full[:out_features, :in_features].contiguous()
    raise ValueError(f"unknown mask kind {kind!r}")


def _exact_count_mask(size: int, density: float, generator: torch.Generator | None) -> torch.Tensor:
    keep = max(1, round(density * size))
    mask = torch.zeros(size, dtype=torch.bool)
    mask[torch.randperm(size, generator=generator)[:keep]] = True
    return mask


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The part of ``tensor`` this rank holds: its local shard if it is a DTensor (FSDP2)."""
    from torch.distributed.tensor import DTensor

    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def local_shard(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The rows of ``full`` that this rank holds of ``like`` (a DTensor sharded on dim 0, as
    FSDP2 shards parameters: ``torch.chunk`` order); ``full`` itself if ``like`` is local."""
    from torch.distributed.tensor import DTensor, Shard

    if not isinstance(like, DTensor):
        return full
    if like.placements != (Shard(0),):
        raise AssertionError(f"unsupported sharding {like.placements} of a masked weight")
    rank, chunks = like.device_mesh.get_local_rank(), torch.chunk(full, like.device_mesh.size())
    return chunks[rank] if rank < len(chunks) else full[:0]


def _remask_after_load(module: MaskedLinear, _incompatible_keys: object) -> None:
    module.apply_mask_()


class MaskedLinear(nn.Linear):
    """``nn.Linear`` with a static sparse mask (``density < 1``) applied through
    :func:`hptransfer.kernels.masked_linear`. At density 1 it is exactly ``nn.Linear``.

    ``init_scale``: a structural factor on the init std, read by the parameterization (GPT-2's
    1/√(2·depth) on residual projections).
    """

    mask: torch.Tensor | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        density: float = 1.0,
        mask_kind: str = "random",
        mask_block: int = 64,
        seed: int = 0,
        kernel: str = "auto",
        init_scale: float = 1.0,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device)
        self.density = density
        self.init_scale = init_scale
        self.mask_kind = mask_kind
        self.mask_block = mask_block
        self.kernel = kernel
        # Block layout of the static mask, computed on first use; keyed on the mask's device,
        # storage and version so a move, a load_state_dict or an in-place edit rebuilds it.
        self._layout_cache: tuple[tuple, BlockLayout] | None = None
        mask = None
        if density < 1 and self.weight.device.type != "meta":
            generator = torch.Generator().manual_seed(seed)
            mask = draw_mask(
                out_features,
                in_features,
                density,
                kind=mask_kind,
                block=mask_block,
                generator=generator,
            ).to(self.weight.device)
        self.register_buffer("mask", mask)
        self.apply_mask_()
        self.register_load_state_dict_post_hook(_remask_after_load)

    @property
    def realised_density(self) -> float:
        return 1.0 if self.mask is None else self.mask.float().mean().item()

    @torch.no_grad()
    def apply_mask_(self) -> None:
        """Re-establish the invariant: masked weights are exactly zero (in this rank's shard
        when the weight is sharded)."""
        if self.mask is not None:
            local_tensor(self.weight).mul_(local_shard(self.mask, self.weight))

    def backend(self) -> str:
        return resolve_backend(self.kernel, self.weight.device, self.weight.dtype)

    def block_layout(self) -> BlockLayout | None:
        """The non-empty blocks of a ``block`` mask (None for other kinds), computed once."""
        if self.mask is None or self.mask_kind != "block":
            return None
        key = (self.mask.device, self.mask.data_ptr(), self.mask._version)
        if self._layout_cache is None or self._layout_cache[0] != key:
            self._layout_cache = (key, block_layout(self.mask, self.mask_block))
        return self._layout_cache[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mask is None:
            return super().forward(x)
        backend = self.backend()
        # Only the Triton backend has a block-sparse path; torch's GEMM ignores the layout.
        layout = self.block_layout() if backend == "triton" else None
        return masked_linear(x, self.weight, self.mask, self.bias, backend=backend, layout=layout)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, density={self.density}"
