"""The kernel contract, one test for every backend available here.

``masked_linear(x, W, M, b)`` is ``x @ (W ⊙ M)ᵀ + b`` whatever ``W`` holds under the mask
(zeros, garbage, NaN), with ``dX = dY (W ⊙ M)`` and ``dW = (dYᵀ X) ⊙ M`` exactly zero under
the mask. Backends: torch always; Triton where it is installed (on a GPU, else through its
CPU interpreter, set up before the kernel module is first imported).
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch
from kernel_cases import assert_matches_reference, case

from hptransfer.kernels import BACKENDS, block_layout, masked_linear

if not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"  # read when the Triton kernel module is imported

HAS_TRITON = importlib.util.find_spec("triton") is not None
AVAILABLE = [
    pytest.param(b, marks=pytest.mark.skipif(b == "triton" and not HAS_TRITON, reason="no triton"))
    for b in BACKENDS
]
UNDER_MASK = {
    "zeros": lambda w, mask: w,
    "garbage": lambda w, mask: torch.where(mask, w, torch.full_like(w, 7.5)),
    "nan": lambda w, mask: w.masked_fill(~mask, float("nan")),
}


@pytest.mark.parametrize("backend", AVAILABLE)
@pytest.mark.parametrize("under_mask", list(UNDER_MASK))
@pytest.mark.parametrize(
    ("x_shape", "out", "kind"),
    [((2, 9, 48), 40, "random"), ((30, 48), 33, "row_balanced"), ((30, 64), 48, "block")],
)
def test_every_backend_computes_the_reference(backend, under_mask, x_shape, out, kind):
    x, weight, mask, bias = case(x_shape, out, kind, block=16)
    weight = UNDER_MASK[under_mask](weight, mask)
    assert_matches_reference(x, weight, mask, bias, backend=backend)
    assert_matches_reference(x, weight, mask, None, backend=backend)


@pytest.mark.parametrize("backend", AVAILABLE)
def test_a_block_layout_changes_nothing(backend):
    """The layout only tells a backend which blocks it may skip."""
    x, weight, mask, bias = case((30, 64), 48, "block", block=16)
    weight = UNDER_MASK["nan"](weight, mask)
    assert_matches_reference(x, weight, mask, bias, block_layout(mask, 16), backend=backend)


def test_torch_backend_trains_under_autocast():
    """Under autocast the GEMMs run in bf16 and the gradients come back in the inputs' dtypes."""
    x, weight, mask, bias = case((6, 32), 16, "random")
    x, weight = x.requires_grad_(), weight.clone().requires_grad_()
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        y = masked_linear(x, weight, mask, bias, backend="torch")
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert x.grad.dtype == weight.grad.dtype == torch.float32
    assert (weight.grad[~mask] == 0).all() and weight.grad[mask].abs().sum() > 0
