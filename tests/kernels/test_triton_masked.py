"""The Triton masked linear against the torch reference (CPU: through Triton's interpreter)."""

from __future__ import annotations

import functools
import os

import pytest
import torch

if not torch.cuda.is_available():
    # @triton.jit picks interpreted kernels only if this is set when the kernel module is
    # imported, which happens lazily below (first use of the triton backend).
    os.environ["TRITON_INTERPRET"] = "1"

pytest.importorskip("triton")

from kernel_cases import DEVICE, DTYPES, assert_matches_reference, case, grads

from hptransfer.config import ModelConfig, RunConfig
from hptransfer.errors import BackendUnavailableError
from hptransfer.kernels import (
    block_layout,
    masked_linear,
    reference_masked_linear,
    resolve_backend,
    triton_kernels,
)
from hptransfer.models import build_model
from hptransfer.models.sparse import MaskedLinear, draw_mask

assert_triton = functools.partial(assert_matches_reference, backend="triton")


@pytest.mark.parametrize(
    ("x_shape", "out", "kind", "block"),
    [
        ((40, 72), 100, "random", 32),  # ragged: no dim a multiple of the 64-wide tiles
        ((2, 20, 72), 100, "row_balanced", 32),  # 3-D input
        ((3, 130), 70, "random", 32),  # fewer tokens than a tile
        ((2, 3, 7, 48), 33, "random", 16),  # 4-D input
    ],
)
def test_fused_matches_reference(x_shape, out, kind, block):
    assert_triton(*case(x_shape, out, kind, block))


@pytest.mark.parametrize(
    ("x_shape", "out", "block"),
    [((2, 20, 72), 100, 32), ((40, 48), 90, 16), ((33, 130), 70, 64), ((33, 130), 200, 128)],
)
def test_block_sparse_matches_reference(x_shape, out, block):
    x, weight, mask, bias = case(x_shape, out, "block", block)
    layout = block_layout(mask, block)
    assert layout.full
    assert_triton(x, weight, mask, bias, layout)


def test_block_sparse_with_partial_blocks_applies_the_element_mask():
    x, weight, mask, bias = case((2, 20, 72), 100, "random", density=0.1)
    layout = block_layout(mask, 32)
    assert not layout.full
    assert_triton(x, weight, mask, bias, layout)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_half_precision_with_fp32_accumulation(dtype):
    x, weight, mask, bias = case((2, 20, 72), 100, "block", 32, dtype=dtype)
    assert_triton(x, weight, mask, bias)
    assert_triton(x, weight, mask, bias, block_layout(mask, 32))


def test_uint8_mask_and_no_bias():
    x, weight, mask, _ = case((40, 72), 100, "random")
    assert_triton(x, weight, mask.to(torch.uint8).bool(), None)
    got = masked_linear(x, weight, mask.to(torch.uint8), backend="triton")
    torch.testing.assert_close(got, reference_masked_linear(x, weight, mask))


def test_mask_is_applied_as_weights_load_and_empty_blocks_are_never_read():
    x, weight, mask, bias = case((40, 72), 100, "block", 32)
    # Break the layer's invariant with NaN under the mask: the fused path masks every
    # loaded tile, and the block path (full blocks: no element mask) must skip the NaNs.
    poisoned = weight.masked_fill(~mask, float("nan"))
    assert_triton(x, poisoned, mask, bias)
    assert_triton(x, poisoned, mask, bias, block_layout(mask, 32))


def test_empty_block_rows_and_columns_give_bias_and_zerograds():
    mask = torch.zeros(70, 96, dtype=torch.bool, device=DEVICE)
    mask[:32, 32:64] = True  # one non-empty block: block rows 1-2, block columns 0, 2 empty
    x, weight, _, bias = case((20, 96), 70, "random")
    weight = weight * mask
    layout = block_layout(mask, 32)
    assert layout.nnz == 1 and layout.grid == (3, 3)
    (y, dx, dw, _), _ = grads(masked_linear, x, weight, mask, bias, backend="triton", layout=layout)
    torch.testing.assert_close(y[:, 32:], bias[32:].expand(20, -1))
    assert (dx[:, :32] == 0).all() and (dx[:, 64:] == 0).all()
    assert (dw[~mask] == 0).all()
    assert_triton(x, weight, mask, bias, layout)


def test_block_layout_lists_each_nonempty_block_in_row_and_column_order():
    mask = draw_mask(100, 72, 0.5, kind="block", block=16, generator=torch.Generator())
    layout = block_layout(mask, 16)
    tiles = torch.zeros(layout.grid, dtype=torch.bool)
    tiles[layout.tile_rows.long(), layout.tile_cols.long()] = True
    dense = torch.nn.functional.pad(mask, (0, 8, 0, 12)).view(7, 16, 5, 16).any(3).any(1)
    assert torch.equal(tiles, dense)
    for r in range(7):
        lo, hi = layout.row_ptr[r], layout.row_ptr[r + 1]
        assert layout.row_idx[lo:hi].tolist() == dense[r].nonzero().flatten().tolist()
    for c in range(5):
        lo, hi = layout.col_ptr[c], layout.col_ptr[c + 1]
        assert layout.col_idx[lo:hi].tolist() == dense[:, c].nonzero().flatten().tolist()
    assert layout.full and layout.block_density == layout.nnz / 35


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x": torch.randn(4, 71)}, "last dim must equal"),
        ({"weight": torch.randn(100)}, "weight must be 2-D"),
        ({"mask": torch.ones(72, 100, dtype=torch.bool)}, "mask shape"),
        ({"mask": torch.ones(100, 72)}, "mask must be bool or uint8"),
        ({"bias": torch.randn(72)}, "bias must have shape"),
        ({"x": torch.randn(4, 72, dtype=torch.float64)}, "dtypes must equal"),
        ({"layout": block_layout(torch.ones(72, 100, dtype=torch.bool), 32)}, "block layout"),
    ],
)
def test_bad_input_is_a_clear_error_before_launch(change, message):
    x, weight, mask, bias = case((4, 72), 100, "random")
    args = {"x": x, "weight": weight, "mask": mask, "bias": bias, "layout": None}
    args.update({k: v.to(DEVICE) if isinstance(v, torch.Tensor) else v for k, v in change.items()})
    with pytest.raises(ValueError, match=message):
        masked_linear(**args, backend="triton")


def test_no_gpu_and_no_interpreter_is_a_clear_error(monkeypatch):
    kernels = triton_kernels()
    monkeypatch.setattr(kernels, "INTERPRETED", False)
    with pytest.raises(BackendUnavailableError, match="TRITON_INTERPRET=1"):
        resolve_backend("triton", torch.device("cpu"))
    assert resolve_backend("auto", torch.device("cpu")) == "torch"


def test_masked_linear_layer_caches_its_block_layout_until_the_mask_changes():
    layer = MaskedLinear(
        64, 96, density=0.5, mask_kind="block", mask_block=32, kernel="triton", device=DEVICE
    )
    layout = layer.block_layout()
    assert layout is layer.block_layout() and layout.full
    other = MaskedLinear(
        64, 96, density=0.5, mask_kind="block", mask_block=32, seed=7, device=DEVICE
    )
    layer.load_state_dict(other.state_dict())
    assert layer.block_layout() is not layout
    assert torch.equal(layer.block_layout().tile_rows, other.block_layout().tile_rows)
    assert MaskedLinear(64, 96, density=0.5, kernel="triton").block_layout() is None
    x = torch.randn(2, 5, 64, device=DEVICE)
    torch.testing.assert_close(
        layer(x), reference_masked_linear(x, layer.weight, layer.mask, layer.bias)
    )


def _train_losses(kernel: str, mask: str, block: str = "gpt2", steps: int = 4) -> list[float]:
    model_cfg = ModelConfig(
        kind="gpt",
        block=block,
        width=64,
        heads=2,
        depth=1,
        context=16,
        input_size=32,
        density=0.5,
        mask=mask,
        mask_block=32,
        kernel=kernel,
    )
    model = build_model(RunConfig(model=model_cfg), device=DEVICE)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    # One batch seen repeatedly: the loss must fall, and both paths must see the same data.
    batch = torch.randint(0, 32, (4, 17), generator=torch.Generator().manual_seed(0))
    losses = []
    batch = batch.to(DEVICE)
    for _ in range(steps):
        logits = model(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    sparse = [m for m in model.modules() if isinstance(m, MaskedLinear)]
    assert all((m.weight[~m.mask] == 0).all() for m in sparse), "masked weights revived"
    assert {m.backend() for m in sparse} == {kernel}
    return losses


@pytest.mark.parametrize(
    ("mask", "block"), [("random", "gpt2"), ("block", "gpt2"), ("random", "llama")]
)
def test_sparse_gpt_trains_the_same_with_triton_as_with_torch(mask, block):
    """Both blocks: every sparse linear (LLaMA's SwiGLU gate, up, down too) on Triton."""
    torch_losses = _train_losses("torch", mask, block)
    triton_losses = _train_losses("triton", mask, block)
    assert triton_losses[-1] < triton_losses[0]
    torch.testing.assert_close(triton_losses, torch_losses, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(12))
def test_every_gpu_tile_config_computes_the_same_products(index, monkeypatch):
    """The GPU autotune candidates, run through the production launcher (interpreter on CPU)."""
    import triton

    kernels = triton_kernels()

    def tuner(layout: int) -> triton.runtime.Autotuner:
        configs = kernels._gpu_configs(layout)
        return triton.autotune([configs[index % len(configs)]], key=[])(
            kernels._masked_matmul_kernel
        )

    monkeypatch.setattr(kernels, "_tuned", tuner)
    monkeypatch.setattr(kernels, "INTERPRETED", False)  # launch as on a GPU
    x, weight, mask, bias = case((40, 72), 100, "block", 32)

    def unchecked(x, weight, mask, bias, layout=None):
        return kernels.TritonMaskedLinear.apply(x, weight, mask.view(torch.uint8), bias, layout)

    for layout in (None, block_layout(mask, 32)):
        got, grad_out = grads(unchecked, x, weight, mask, bias, layout=layout)
        want, _ = grads(reference_masked_linear, x, weight, mask, bias, grad_out)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)


def test_autocast_runs_in_the_autocast_dtype_like_f_linear():
    x, weight, mask, bias = case((2, 20, 72), 100, "random")
    leaf = weight.clone().requires_grad_()
    with torch.autocast(DEVICE.type, dtype=torch.float16):
        got = masked_linear(x, leaf, mask, bias, backend="triton")
        want = torch.nn.functional.linear(x, weight * mask, bias)
    assert got.dtype == want.dtype == torch.float16
    torch.testing.assert_close(got, want, rtol=2e-3, atol=2e-3)
    got.float().sum().backward()
    assert leaf.grad.dtype == torch.float32 and (leaf.grad[~mask] == 0).all()


def test_all_empty_mask_and_zero_tokens_launch_nothing():
    x, weight, _, bias = case((20, 96), 70, "random")
    mask = torch.zeros(70, 96, dtype=torch.bool, device=DEVICE)
    layout = block_layout(mask, 32)
    assert layout.nnz == 0
    (y, dx, dw, _), _ = grads(
        masked_linear, x, weight * mask, mask, bias, backend="triton", layout=layout
    )
    assert torch.equal(y, bias.expand(20, -1)) and not dx.any() and not dw.any()
    (y, dx, dw, db), _ = grads(masked_linear, x[:0], weight, mask, bias, backend="triton")
    assert y.shape == (0, 70) and dx.shape == (0, 96) and not dw.any() and not db.any()
