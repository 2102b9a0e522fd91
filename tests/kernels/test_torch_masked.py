"""The torch backend's bitwise masking: exact zeros whatever the masked entries hold."""

from __future__ import annotations

import pytest
import torch

from hptransfer.kernels import masked_linear
from hptransfer.kernels.torch_masked import keep_words, select, select_


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_select_zeroes_exactly_what_the_mask_drops(dtype):
    values = torch.tensor([[1.5, float("nan"), -2.0], [float("inf"), -0.0, float("-inf")]])
    mask = torch.tensor([[True, False, True], [False, True, False]])
    keep = keep_words(mask, dtype)
    got = select(values.to(dtype), keep)
    assert got.dtype == dtype
    assert torch.equal(got, values.to(dtype).masked_fill(~mask, 0))
    assert not got[~mask].signbit().any()  # +0.0, not a sign bit left from -inf
    in_place = values.to(dtype)
    assert select_(in_place, keep) is in_place and torch.equal(in_place, got)


def test_weight_gradient_is_zero_under_the_mask_even_for_non_finite_inputs():
    """An inf input makes dYᵀX non-finite across a whole column: the mask still zeroes it."""
    mask = torch.tensor([[True, False, True, False], [False, True, True, True]])
    x = torch.ones(3, 4)
    x[0, 1] = float("inf")
    weight = torch.randn(2, 4).masked_fill(~mask, 0).requires_grad_()
    masked_linear(x, weight, mask, backend="torch").sum().backward()
    assert (weight.grad[~mask] == 0).all()
    assert weight.grad[0, 0] == 3 and weight.grad[1, 1] == float("inf")
