"""Masked-matmul kernels behind one function, :func:`masked_linear`.

Backends: ``torch`` (always available; the ground truth) and ``triton`` (CUDA, or CPU through
the Triton interpreter with ``TRITON_INTERPRET=1``). Triton is imported lazily.
"""

from __future__ import annotations

import torch

from hptransfer.kernels.torch_masked import reference_masked_linear, torch_masked_linear

BACKENDS = ("torch", "triton")


def resolve_backend(requested: str, device: torch.device) -> str:
    """Map a model's ``kernel: auto | torch | triton`` to the backend that will run."""
    if requested == "auto":
        return "triton" if device.type == "cuda" and _triton_importable() else "torch"
    return requested


def _triton_importable() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def masked_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    mask: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    backend: str = "torch",
) -> torch.Tensor:
    """``x @ (W ⊙ M)ᵀ + b`` with ``dW`` masked, on the chosen backend."""
    if backend == "torch":
        return torch_masked_linear(x, weight, mask, bias)
    raise ValueError(f"unknown kernel backend {backend!r}")


__all__ = ["BACKENDS", "masked_linear", "reference_masked_linear", "resolve_backend"]
