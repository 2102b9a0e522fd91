"""Triton masked linear: ``y = x @ (W ⊙ M)ᵀ + b`` without ever building ``W ⊙ M``.

One kernel, ``C = A @ B``, serves all three products of a linear layer:

- forward ``Y = X @ (W ⊙ M)ᵀ``: the mask is applied to the weight tiles as they load;
- ``dX = dY @ (W ⊙ M)``: the same, on the other orientation of ``W``;
- ``dW = (dYᵀ X) ⊙ M``: the mask is applied in the epilogue, so masked entries are exactly 0.

A block-sparse mode reads a precomputed :class:`BlockLayout` and launches only over non-empty
``b × b`` tiles: the forward and ``dX`` reduce only over the non-empty blocks of their row or
column, and ``dW`` computes only the non-empty blocks (the rest stay zero).

Accumulation is fp32. On a GPU the tile sizes are autotuned; in Triton's CPU interpreter
(``TRITON_INTERPRET=1`` set before this module is imported) a fixed big-tile configuration is
used, since the interpreter's cost is per program and K-step, not per element.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from hptransfer.errors import BackendUnavailableError
from hptransfer.kernels.block_layout import BlockLayout

# Where the element mask applies: nowhere, to the B operand as it loads, or in the epilogue.
MASK_NONE, MASK_B, MASK_C = 0, 1, 2
# Which tiles run: every output tile over all of K; every output tile over the K blocks listed
# for its column (CSR); or only the output tiles listed (non-empty blocks of dW).
DENSE, REDUCE_LIST, TILE_LIST = 0, 1, 2
# The same codes as kernel-side constants (a @triton.jit function reads only constexpr globals).
K_MASK_B, K_MASK_C = tl.constexpr(MASK_B), tl.constexpr(MASK_C)
K_REDUCE_LIST, K_TILE_LIST = tl.constexpr(REDUCE_LIST), tl.constexpr(TILE_LIST)
# Rows of output tiles a program group walks together, for L2 reuse of the B tiles.
GROUP_M = 8

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Tile dimensions a layout pins to the mask block (the rest are tuned).
_BLOCK_TILES = {DENSE: (), REDUCE_LIST: ("BLOCK_N", "BLOCK_K"), TILE_LIST: ("BLOCK_M", "BLOCK_N")}
# The interpreter costs ~3 ms per program and K-step whatever the tile: use big tiles.
_INTERPRETER_TILES = {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 64, "GROUP_M": GROUP_M}


@triton.jit
def _grouped_tile(pid, num_m, num_n, GROUP_M: tl.constexpr):
    """Tile (m, n) of program ``pid``, walking GROUP_M rows of tiles at a time for L2 reuse."""
    per_group = GROUP_M * num_n
    first_m = (pid // per_group) * GROUP_M
    group_m = tl.minimum(num_m - first_m, GROUP_M)
    return first_m + (pid % per_group) % group_m, (pid % per_group) // group_m


@triton.jit
def _accumulate(
    acc, a_tile, b_tile, keep_tile, offs_k, K, MASK_ON: tl.constexpr, PRECISION: tl.constexpr
):
    """``acc += A[m, k] @ B[k, n]`` for the K slice ``offs_k`` that the pointer tiles are at;
    B is masked as it loads when MASK_ON == B."""
    in_k = offs_k < K
    a = tl.load(a_tile, mask=in_k[None, :], other=0.0)
    b = tl.load(b_tile, mask=in_k[:, None], other=0.0)
    if MASK_ON == K_MASK_B:
        keep = tl.load(keep_tile, mask=in_k[:, None], other=0)
        b = tl.where(keep != 0, b, tl.zeros_like(b))
    return tl.dot(a, b, acc, input_precision=PRECISION)


@triton.jit
def _masked_matmul_kernel(
    a_ptr,
    b_ptr,
    c_ptr,
    bias_ptr,
    mask_ptr,
    list_ptr,
    list_idx,
    M,
    N,
    K,
    stride_am,
    stride_ak,
    stride_bk,
    stride_bn,
    stride_cm,
    stride_cn,
    stride_mr,
    stride_mc,
    HAS_BIAS: tl.constexpr,
    MASK_ON: tl.constexpr,
    LAYOUT: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    """``C = A @ B (+ bias)`` with an optional element mask on B or C and an optional layout.

    LAYOUT == REDUCE_LIST: output column tile n reduces over the K tiles
    ``list_idx[list_ptr[n]:list_ptr[n + 1]]``. LAYOUT == TILE_LIST: program i computes output
    tile ``(list_ptr[i], list_idx[i])``. The mask's strides follow B's layout (MASK_ON == B) or
    C's (MASK_ON == C).
    """
    pid = tl.program_id(0)
    if LAYOUT == K_TILE_LIST:
        pid_m = tl.load(list_ptr + pid)
        pid_n = tl.load(list_idx + pid)
    else:
        pid_m, pid_n = _grouped_tile(pid, tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N), GROUP_M)
    # int64 offsets: no 2**31-element limit, and no per-op overflow checks in the interpreter.
    rows = pid_m.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K).to(tl.int64)
    # Rows and columns past the edge wrap around, so loads need only a K bound; stores are masked.
    a_tile = a_ptr + (rows % M)[:, None] * stride_am + offs_k[None, :] * stride_ak
    b_tile = b_ptr + offs_k[:, None] * stride_bk + (cols % N)[None, :] * stride_bn
    keep_tile = mask_ptr + offs_k[:, None] * stride_mr + (cols % N)[None, :] * stride_mc
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if LAYOUT == K_REDUCE_LIST:
        for i in range(tl.load(list_ptr + pid_n), tl.load(list_ptr + pid_n + 1)):
            k0 = tl.load(list_idx + i).to(tl.int64) * BLOCK_K
            acc = _accumulate(
                acc,
                a_tile + k0 * stride_ak,
                b_tile + k0 * stride_bk,
                keep_tile + k0 * stride_mr,
                offs_k + k0,
                K,
                MASK_ON,
                PRECISION,
            )
    else:
        for _ in range(0, tl.cdiv(K, BLOCK_K)):
            acc = _accumulate(acc, a_tile, b_tile, keep_tile, offs_k, K, MASK_ON, PRECISION)
            a_tile += BLOCK_K * stride_ak
            b_tile += BLOCK_K * stride_bk
            keep_tile += BLOCK_K * stride_mr
            offs_k += BLOCK_K

    inside = (rows[:, None] < M) & (cols[None, :] < N)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + cols, mask=cols < N, other=0.0).to(tl.float32)[None, :]
    if MASK_ON == K_MASK_C:
        keep = tl.load(
            mask_ptr + rows[:, None] * stride_mr + cols[None, :] * stride_mc, mask=inside, other=0
        )
        acc = tl.where(keep != 0, acc, 0.0)
    tl.store(
        c_ptr + rows[:, None] * stride_cm + cols[None, :] * stride_cn,
        acc.to(c_ptr.dtype.element_ty),
        mask=inside,
    )


# Decided when ``@triton.jit`` ran, i.e. when this module was imported.
INTERPRETED = type(_masked_matmul_kernel).__name__ == "InterpretedFunction"


def _config(num_warps: int, num_stages: int, **tiles: int) -> triton.Config:
    return triton.Config(tiles, num_warps=num_warps, num_stages=num_stages)


def _gpu_configs(layout: int) -> list[triton.Config]:
    """Candidate tiles (Triton's matmul tutorial plus Hopper-sized ones); the layout fixes
    the tile dimensions that must equal the mask block."""
    if layout == REDUCE_LIST:  # BLOCK_N = BLOCK_K = mask block
        return [
            _config(w, s, BLOCK_M=m, GROUP_M=GROUP_M)
            for m in (64, 128, 256)
            for w in (4, 8)
            for s in (3, 4)
        ]
    if layout == TILE_LIST:  # BLOCK_M = BLOCK_N = mask block
        return [
            _config(w, s, BLOCK_K=k, GROUP_M=GROUP_M)
            for k in (32, 64, 128)
            for w in (4, 8)
            for s in (3, 4)
        ]
    shapes = [
        (128, 256, 64, 8, 3),
        (256, 128, 64, 8, 3),
        (128, 128, 64, 8, 4),
        (128, 128, 32, 4, 4),
        (64, 256, 32, 4, 4),
        (128, 64, 32, 4, 4),
        (64, 128, 32, 4, 4),
        (128, 32, 32, 4, 4),
        (64, 32, 32, 2, 5),
        (32, 64, 32, 2, 5),
    ]
    return [
        _config(w, s, BLOCK_M=m, BLOCK_N=n, BLOCK_K=k, GROUP_M=GROUP_M) for m, n, k, w, s in shapes
    ]


@functools.cache
def _tuned(layout: int) -> triton.runtime.Autotuner:
    return triton.autotune(
        configs=_gpu_configs(layout),
        key=["M", "N", "K", "HAS_BIAS", "MASK_ON", "PRECISION", "BLOCK_M", "BLOCK_N", "BLOCK_K"],
    )(_masked_matmul_kernel)


def _matmul(
    a: torch.Tensor,
    b: torch.Tensor,
    out: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    mask_on: int = MASK_NONE,
    layout: int = DENSE,
    lists: tuple[torch.Tensor, torch.Tensor] | None = None,
    block: int = 0,
) -> torch.Tensor:
    """``out = a @ b (+ bias)`` for strided views ``a`` (M, K), ``b`` (K, N), ``out`` (M, N).

    ``mask`` is a uint8 view shaped like ``b`` (``mask_on=MASK_B``) or ``out`` (``MASK_C``).
    """
    (M, K), N = a.shape, b.shape[1]
    if M == 0 or N == 0 or (layout == TILE_LIST and lists[0].numel() == 0):
        return out  # nothing to launch (a CUDA grid of 0 programs is an error)
    if K == 0:
        return out.copy_(bias.expand_as(out) if bias is not None else torch.zeros_like(out))
    mask_strides = mask.stride() if mask is not None else (0, 0)
    list_ptr, list_idx = lists if lists is not None else (out, out)  # unused when DENSE
    fixed = dict.fromkeys(_BLOCK_TILES[layout], block)

    def grid(meta: dict) -> tuple[int]:
        if layout == TILE_LIST:
            return (list_ptr.numel(),)
        return (triton.cdiv(M, meta["BLOCK_M"]) * triton.cdiv(N, meta["BLOCK_N"]),)

    kernel = _masked_matmul_kernel if INTERPRETED else _tuned(layout)
    tiles = {**_INTERPRETER_TILES, **fixed} if INTERPRETED else fixed
    kernel[grid](
        a,
        b,
        out,
        bias if bias is not None else out,
        mask if mask is not None else out,
        list_ptr,
        list_idx,
        M,
        N,
        K,
        *a.stride(),
        *b.stride(),
        *out.stride(),
        *mask_strides,
        HAS_BIAS=bias is not None,
        MASK_ON=mask_on,
        LAYOUT=layout,
        PRECISION=_precision(a.dtype),
        **tiles,
    )
    return out


def _precision(dtype: torch.dtype) -> str:
    # Match torch's fp32 matmul (TF32 only if torch allows it); ignored for fp16/bf16.
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"


# ----------------------------------------------------------------------------- the three products


def _forward(x2d, weight, mask, bias, layout: BlockLayout | None) -> torch.Tensor:
    y = torch.empty(x2d.shape[0], weight.shape[0], device=x2d.device, dtype=x2d.dtype)
    if layout is None:
        return _matmul(x2d, weight.t(), y, bias=bias, mask=mask.t(), mask_on=MASK_B)
    return _matmul(
        x2d,
        weight.t(),
        y,
        bias=bias,
        mask=mask.t(),
        mask_on=MASK_NONE if layout.full else MASK_B,
        layout=REDUCE_LIST,
        lists=(layout.row_ptr, layout.row_idx),
        block=layout.block,
    )


def _grad_input(dy, weight, mask, layout: BlockLayout | None) -> torch.Tensor:
    dx = torch.empty(dy.shape[0], weight.shape[1], device=dy.device, dtype=dy.dtype)
    if layout is None:
        return _matmul(dy, weight, dx, mask=mask, mask_on=MASK_B)
    return _matmul(
        dy,
        weight,
        dx,
        mask=mask,
        mask_on=MASK_NONE if layout.full else MASK_B,
        layout=REDUCE_LIST,
        lists=(layout.col_ptr, layout.col_idx),
        block=layout.block,
    )


def _grad_weight(dy, x2d, weight, mask, layout: BlockLayout | None) -> torch.Tensor:
    if layout is None:
        dw = torch.empty_like(weight, memory_format=torch.contiguous_format)
        return _matmul(dy.t(), x2d, dw, mask=mask, mask_on=MASK_C)
    dw = torch.zeros_like(weight, memory_format=torch.contiguous_format)  # empty blocks stay 0
    return _matmul(
        dy.t(),
        x2d,
        dw,
        mask=mask,
        mask_on=MASK_NONE if layout.full else MASK_C,
        layout=TILE_LIST,
        lists=(layout.tile_rows, layout.tile_cols),
        block=layout.block,
    )


class TritonMaskedLinear(torch.autograd.Function):
    """Fused masked linear; ``layout`` (or None) selects the block-sparse launches."""

    @staticmethod
    def forward(ctx, x, weight, mask, bias, layout):  # type: ignore[override]
        x2d = x.reshape(-1, x.shape[-1])
        ctx.save_for_backward(x2d, weight, mask)
        ctx.layout = layout
        ctx.has_bias = bias is not None
        ctx.x_shape = x.shape
        y = _forward(x2d, weight, mask, bias, layout)
        return y.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        x2d, weight, mask = ctx.saved_tensors
        dy = grad_out.reshape(-1, grad_out.shape[-1])
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = _grad_input(dy, weight, mask, ctx.layout).view(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            grad_w = _grad_weight(dy, x2d, weight, mask, ctx.layout)
        if ctx.has_bias and ctx.needs_input_grad[3]:
            grad_b = dy.sum(0, dtype=torch.float32).to(dy.dtype)
        return grad_x, grad_w, None, grad_b, None


# ----------------------------------------------------------------------------- checked entry point


def check_device(device: torch.device) -> None:
    """Raise :class:`BackendUnavailableError` unless these kernels can run on ``device``."""
    if device.type == "cuda" and not INTERPRETED:
        return
    if device.type == "cpu" and INTERPRETED:
        return
    if device.type == "cpu":
        raise BackendUnavailableError(
            "kernel 'triton' needs a CUDA GPU, or Triton's CPU interpreter: set TRITON_INTERPRET=1 "
            "in the environment before Python starts (slow; for tests). Or use kernel: torch "
            "(or auto, which picks torch without a GPU)."
        )
    raise BackendUnavailableError(
        f"kernel 'triton' cannot run on device {device}: Triton kernels were loaded "
        f"{'for the CPU interpreter (TRITON_INTERPRET=1)' if INTERPRETED else 'for CUDA'}"
    )


def _validate(x, weight, mask, bias, layout: BlockLayout | None) -> None:
    """Clear errors before launch (a bad launch is a crash or silent garbage, not a message)."""
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D (out, in); got shape {tuple(weight.shape)}")
    if x.dim() < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"input's last dim must equal weight's in_features {weight.shape[1]}; "
            f"got input shape {tuple(x.shape)}"
        )
    if mask.shape != weight.shape:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} must equal weight shape {tuple(weight.shape)}"
        )
    if mask.dtype not in (torch.bool, torch.uint8):
        raise ValueError(f"mask must be bool or uint8; got {mask.dtype}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must have shape ({weight.shape[0]},); got {tuple(bias.shape)}")
    if weight.dtype not in _DTYPES:
        raise ValueError(f"weight dtype must be one of {_DTYPES}; got {weight.dtype}")
    tensors = [t for t in (x, bias) if t is not None]
    if any(t.dtype != weight.dtype for t in tensors):
        raise ValueError(f"input/bias dtypes must equal weight dtype {weight.dtype}")
    if any(t.device != weight.device for t in (*tensors, mask)):
        raise ValueError("input, weight, mask and bias must be on one device")
    if layout is not None and (layout.shape != tuple(weight.shape) or layout.device != mask.device):
        raise ValueError(
            f"block layout is for shape {layout.shape} on {layout.device}; "
            f"weight is {tuple(weight.shape)} on {weight.device}"
        )
    check_device(weight.device)
    if INTERPRETED and weight.dtype == torch.bfloat16:
        raise BackendUnavailableError("Triton's CPU interpreter mishandles bfloat16; use float32")


def _autocast(x, weight, bias):
    """Under autocast, run in its dtype as ``F.linear`` would (the casts are differentiable)."""
    device_type = weight.device.type
    if not torch.is_autocast_enabled(device_type):
        return x, weight, bias
    dtype = torch.get_autocast_dtype(device_type)
    return tuple(None if t is None else t.to(dtype) for t in (x, weight, bias))


def triton_masked_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    mask: torch.Tensor,
    bias: torch.Tensor | None = None,
    layout: BlockLayout | None = None,
) -> torch.Tensor:
    """``x @ (W ⊙ M)ᵀ + b`` with ``dW = (dYᵀ X) ⊙ M``; block-sparse launches when ``layout``
    (from :func:`~hptransfer.kernels.block_layout.block_layout` of ``mask``) is given."""
    x, weight, bias = _autocast(x, weight, bias)
    _validate(x, weight, mask, bias, layout)
    return TritonMaskedLinear.apply(x, weight, mask.view(torch.uint8), bias, layout)
