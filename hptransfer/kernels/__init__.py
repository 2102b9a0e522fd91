"""Masked-matmul kernels behind one function, :func:`masked_linear`.

Backends: ``torch`` (always available; the ground truth) and ``triton`` (CUDA, or CPU through
the Triton interpreter with ``TRITON_INTERPRET=1`` set before Python starts). Triton and the
kernel module are imported lazily, on first use of the ``triton`` backend.
"""

from __future__ import annotations

import torch

from hptransfer.kernels import selfcheck
from hptransfer.kernels.block_layout import BlockLayout, block_layout
from hptransfer.kernels.torch_masked import reference_masked_linear, torch_masked_linear
from hptransfer.kernels.triton_loader import triton_kernels

BACKENDS = ("torch", "triton")


def resolve_backend(
    requested: str, device: torch.device, dtype: torch.dtype = torch.float32
) -> str:
    """Map a model's ``kernel: auto | torch | triton`` to the backend that will run.

    ``auto`` picks Triton on CUDA when it is installed and has passed its self-check
    against the torch reference on this device and dtype (:mod:`.selfcheck`; run on first
    use, then cached), torch otherwise. An explicit ``triton`` that cannot run here raises
    :class:`BackendUnavailableError` saying why.
    """
    if requested == "auto":
        usable = device.type == "cuda" and _triton_importable()
        return "triton" if usable and selfcheck.triton_ok(device, dtype) else "torch"
    if requested == "triton":
        triton_kernels().check_device(device)
    elif requested not in BACKENDS:
        raise ValueError(f"unknown kernel {requested!r}; expected auto or one of {BACKENDS}")
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
    layout: BlockLayout | None = None,
) -> torch.Tensor:
    """``x @ (W ⊙ M)ᵀ + b`` with ``dW`` masked, on the chosen backend.

    ``layout`` (the block layout of ``mask``) makes the Triton backend launch only over
    non-empty blocks; the torch backend ignores it.
    """
    if backend == "torch":
        return torch_masked_linear(x, weight, mask, bias)
    if backend == "triton":
        return triton_kernels().triton_masked_linear(x, weight, mask, bias, layout)
    raise ValueError(f"unknown kernel backend {backend!r}")


__all__ = [
    "BACKENDS",
    "BlockLayout",
    "block_layout",
    "masked_linear",
    "reference_masked_linear",
    "resolve_backend",
    "triton_kernels",
]
