"""Torch masked linear: the reference semantics and the CPU/GPU backend.

The contract every backend keeps: ``masked_linear(x, W, M, b) = x @ (W ⊙ M)ᵀ + b`` where the
entries of ``W`` under the mask are never read (zeros, garbage or NaN give the same result),
``dX = dY @ (W ⊙ M)`` and ``dW = (dYᵀ X) ⊙ M`` (exactly zero under the mask).
``reference_masked_linear`` states it literally; ``tests/kernels/test_kernel_contract.py`` runs
every available backend against it.

The torch backend applies the mask as a bitwise AND of the floats' bits with all-ones or
all-zeros words: exact (a masked NaN becomes +0.0) and vectorised on CPU, where ``masked_fill``
and ``torch.where`` with a bool mask run element by element (about 40× slower at d = 256).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The integer dtype of each element width, to reinterpret a float tensor's bits.
_WORD = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def masked_weight(weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``W ⊙ M`` without reading ``W`` under the mask (``NaN · 0`` would be NaN)."""
    return weight.masked_fill(~mask.bool(), 0)


def keep_words(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``mask`` as integers as wide as ``dtype``: all bits set where kept, none where masked."""
    return mask.bool().view(torch.uint8).to(_WORD[dtype.itemsize]).neg_()


def select(tensor: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """A copy of ``tensor`` with +0.0 wherever ``keep`` (from :func:`keep_words`) is zero."""
    return (tensor.view(keep.dtype) & keep).view(tensor.dtype)


def select_(tensor: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """:func:`select` in place."""
    tensor.view(keep.dtype).bitwise_and_(keep)
    return tensor


def reference_masked_linear(
    x: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``x @ (W ⊙ M)ᵀ + b`` by definition (for tests, and as the semantics)."""
    return F.linear(x, masked_weight(weight, mask), bias)


class TorchMaskedLinear(torch.autograd.Function):
    """Forward ``x @ (W ⊙ M)ᵀ + b``; ``dX = dY (W ⊙ M)``, ``dW = (dYᵀ X) ⊙ M``.

    ``W ⊙ M`` and the masking of ``dW`` are one weight-sized AND each per step, small next to
    the GEMMs over all tokens.
    """

    @staticmethod
    def forward(ctx, x, weight, mask, bias):  # type: ignore[override]
        keep = keep_words(mask, weight.dtype)
        masked = select(weight, keep)
        ctx.save_for_backward(x, masked, keep)
        ctx.has_bias = bias is not None
        return F.linear(x, masked, bias)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        x, masked, keep = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        # In the gradient's dtype: under autocast the forward's GEMM ran in a lower precision
        # than the saved fp32 tensors (autograd casts the results back to the inputs' dtypes).
        if ctx.needs_input_grad[0]:
            grad_x = grad_out @ masked.to(grad_out.dtype)
        flat_grad = grad_out.reshape(-1, grad_out.shape[-1])
        if ctx.needs_input_grad[1]:
            flat_x = x.reshape(-1, x.shape[-1]).to(flat_grad.dtype)
            grad_w = flat_grad.t() @ flat_x
            # The weight's dtype (autograd would cast a bf16 product back to it anyway).
            grad_w = select_(grad_w.to(masked.dtype), keep)
        if ctx.has_bias and ctx.needs_input_grad[3]:
            grad_b = flat_grad.sum(0)
        return grad_x, grad_w, None, grad_b


def torch_masked_linear(
    x: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    return TorchMaskedLinear.apply(x, weight, mask, bias)
