"""Torch masked linear: the reference semantics and the CPU/GPU backend.

The contract every backend keeps: ``masked_linear(x, W, M, b) = x @ (W ⊙ M)ᵀ + b`` where the
entries of ``W`` under the mask are never read (zeros, garbage or NaN give the same result),
``dX = dY @ (W ⊙ M)`` and ``dW = (dYᵀ X) ⊙ M`` (exactly zero under the mask).
``reference_masked_linear`` states it literally; ``tests/kernels/test_kernel_contract.py`` runs
every available backend against it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_weight(weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``W ⊙ M`` without reading ``W`` under the mask (``NaN · 0`` would be NaN)."""
    return weight.masked_fill(~mask.bool(), 0)


def reference_masked_linear(
    x: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``x @ (W ⊙ M)ᵀ + b`` by definition (for tests, and as the semantics)."""
    return F.linear(x, masked_weight(weight, mask), bias)


class TorchMaskedLinear(torch.autograd.Function):
    """Forward ``x @ (W ⊙ M)ᵀ + b``; ``dX = dY (W ⊙ M)``, ``dW = (dYᵀ X) ⊙ M``.

    ``W ⊙ M`` is one weight-sized pass per step, small next to the GEMMs over all tokens.
    """

    @staticmethod
    def forward(ctx, x, weight, mask, bias):  # type: ignore[override]
        masked = masked_weight(weight, mask)
        ctx.save_for_backward(x, masked, mask)
        ctx.has_bias = bias is not None
        return F.linear(x, masked, bias)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        x, masked, mask = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        # In the gradient's dtype: under autocast the forward's GEMM ran in a lower precision
        # than the saved fp32 tensors (autograd casts the results back to the inputs' dtypes).
        if ctx.needs_input_grad[0]:
            grad_x = grad_out @ masked.to(grad_out.dtype)
        flat_grad = grad_out.reshape(-1, grad_out.shape[-1])
        if ctx.needs_input_grad[1]:
            flat_x = x.reshape(-1, x.shape[-1]).to(flat_grad.dtype)
            grad_w = (flat_grad.t() @ flat_x).masked_fill_(~mask.bool(), 0)
        if ctx.has_bias and ctx.needs_input_grad[3]:
            grad_b = flat_grad.sum(0)
        return grad_x, grad_w, None, grad_b


def torch_masked_linear(
    x: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    return TorchMaskedLinear.apply(x, weight, mask, bias)
