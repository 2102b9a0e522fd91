"""Shared cases for kernel tests: inputs for a masked linear, and the check of a backend's
output and gradients against the fp64 reference (:func:`reference_masked_linear`)."""

from __future__ import annotations

import torch

from hptransfer.kernels import masked_linear, reference_masked_linear
from hptransfer.models.sparse import draw_mask

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# Triton's interpreter holds bf16 as raw integers: bf16 only on a GPU.
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if DEVICE.type == "cuda" else [])
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}


def case(x_shape, out, kind, block=32, density=0.4, dtype=torch.float32, seed=0, bias=True):
    """(x, W, mask, b) with W zero under the mask (a layer's invariant)."""
    gen = torch.Generator().manual_seed(seed)
    in_features = x_shape[-1]
    mask = draw_mask(out, in_features, density, kind=kind, block=block, generator=gen)
    weight = torch.randn(out, in_features, generator=gen) * mask
    tensors = {
        "x": torch.randn(*x_shape, generator=gen),
        "weight": weight,
        "bias": torch.randn(out, generator=gen) if bias else None,
    }
    tensors = {k: None if v is None else v.to(DEVICE, dtype) for k, v in tensors.items()}
    return tensors["x"], tensors["weight"], mask.to(DEVICE), tensors["bias"]


def grads(fn, x, weight, mask, bias, grad_out=None, **kwargs):
    """Output and grads (x, weight, bias) of ``fn`` at fresh leaves."""
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight)]
    if bias is not None:
        leaves.append(bias.detach().clone().requires_grad_())
    y = fn(leaves[0], leaves[1], mask, leaves[2] if bias is not None else None, **kwargs)
    if grad_out is None:
        grad_out = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(y)
    return (y, *torch.autograd.grad(y, leaves, grad_out)), grad_out


def assert_matches_reference(x, weight, mask, bias, layout=None, *, backend: str):
    """``backend``'s y, dX, dW, db equal the fp64 reference's within the dtype's tolerance,
    and dW is exactly zero under the mask."""
    got, grad_out = grads(masked_linear, x, weight, mask, bias, backend=backend, layout=layout)
    want, _ = grads(
        reference_masked_linear,
        x.double(),
        weight.double(),
        mask,
        None if bias is None else bias.double(),
        grad_out.double(),
    )
    tol = TOLERANCE[x.dtype]
    for name, g, w in zip(("y", "dX", "dW", "db")[: len(got)], got, want, strict=True):
        assert g.shape == w.shape and g.dtype == x.dtype, name
        scale = w.abs().max().clamp_min(1.0)
        err = ((g.double() - w).abs().max() / scale).item()
        assert err < tol, f"{backend} {name}: relative error {err:.2e} > {tol:.0e}"
    assert (got[2][~mask] == 0).all(), "masked entries of dW must be exactly zero"
