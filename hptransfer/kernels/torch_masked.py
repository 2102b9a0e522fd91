"""Torch masked linear: the ground truth and the fast CPU/GPU fallback.

``reference_masked_linear`` computes ``x @ (W ⊙ M)ᵀ + b`` literally; tests compare every
other path to it. ``TorchMaskedLinear`` is what trains: sparse layers keep the invariant that
masked weights are stored as exact zeros (set at init and on checkpoint load, kept by a masked
gradient), so the forward is a plain GEMM on ``W`` and only ``dW`` needs the mask. That avoids
the extra weight-sized ``W ⊙ M`` pass and tensor that masking by parametrization pays per step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reference_masked_linear(
    x: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``x @ (W ⊙ M)ᵀ + b`` by definition (slow; for tests and as the semantics)."""
    return F.linear(x, weight * mask.to(weight.dtype), bias)


class TorchMaskedLinear(torch.autograd.Function):
    """Forward ``x @ Wᵀ + b`` for a weight whose masked entries are zero; ``dW = (dYᵀ X) ⊙ M``."""

    @staticmethod
    def forward(ctx, x, weight, mask, bias):  # type: ignore[override]
        ctx.save_for_backward(x, weight, mask)
        ctx.has_bias = bias is not None
        # Under autocast (bf16) the backward GEMMs run in the forward's precision too, as
        # torch.amp.custom_bwd would do; autograd casts dW back to the fp32 master weight.
        device = x.device.type
        ctx.autocast = (device, torch.get_autocast_dtype(device), torch.is_autocast_enabled(device))
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        device, dtype, enabled = ctx.autocast
        with torch.autocast(device, dtype=dtype, enabled=enabled):
            return TorchMaskedLinear._backward(ctx, grad_out)

    @staticmethod
    def _backward(ctx, grad_out):
        x, weight, mask = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_out @ weight
        flat_grad = grad_out.reshape(-1, grad_out.shape[-1])
        if ctx.needs_input_grad[1]:
            grad_w = (flat_grad.t() @ x.reshape(-1, x.shape[-1])).mul_(mask)
        if ctx.has_bias and ctx.needs_input_grad[3]:
            grad_b = flat_grad.sum(0)
        return grad_x, grad_w, None, grad_b


def torch_masked_linear(
    x: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    return TorchMaskedLinear.apply(x, weight, mask, bias)
