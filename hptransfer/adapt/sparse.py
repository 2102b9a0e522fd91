"""Make a model's hidden matrices sparse: its ``nn.Linear`` layers become the project's
:class:`~hptransfer.models.sparse.MaskedLinear`, GPT-2's ``Conv1D`` a :class:`MaskedConv1D`.

The parameters themselves are kept (same tensors, same names, so tied references and the
user's own handles stay valid); each layer gains a ``mask`` buffer, saved with the model's
``state_dict``, drawn once from a seed of its own.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.linear import NonDynamicallyQuantizableLinear

from hptransfer.errors import ConfigError
from hptransfer.kernels import masked_linear, resolve_backend
from hptransfer.models.sparse import (
    MaskedLinear,
    _remask_after_load,
    draw_mask,
    local_shard,
    local_tensor,
)


class MaskedConv1D(nn.Module):
    """transformers' GPT-2 ``Conv1D`` (weight (in, out): y = x·W + b) with a static mask of
    the weight's layout; the product runs through :func:`hptransfer.kernels.masked_linear`."""

    mask: torch.Tensor

    def __init__(self, conv: nn.Module, density: float, kind: str, seed: int, kernel: str):
        super().__init__()
        self.nf, self.nx = conv.nf, conv.nx
        self.weight, self.bias = conv.weight, conv.bias
        self.density, self.kernel = density, kernel
        generator = torch.Generator().manual_seed(seed)
        mask = draw_mask(self.nf, self.nx, density, kind=kind, generator=generator)
        self.register_buffer("mask", mask.t().contiguous().to(self.weight.device))
        self.apply_mask_()
        self.register_load_state_dict_post_hook(_remask_after_load)

    @torch.no_grad()
    def apply_mask_(self) -> None:
        local_tensor(self.weight).mul_(local_shard(self.mask, self.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        backend = resolve_backend(self.kernel, self.weight.device, self.weight.dtype)
        return masked_linear(x, self.weight.t(), self.mask.t(), self.bias, backend=backend)

    def extra_repr(self) -> str:
        return f"nf={self.nf}, nx={self.nx}, density={self.density}"


def sparsify(
    model: nn.Module, names: list[str], density: float, kind: str, seed: int, kernel: str
) -> None:
    """Replace the layers holding the weights ``names`` (hidden matrices) by masked ones;
    the model is left as it was if any of them cannot be masked."""
    masked = {
        name.rpartition(".")[0]: _masked(
            model.get_submodule(name.rpartition(".")[0]),
            name,
            density,
            kind,
            seed * 1000 + i,
            kernel,
        )
        for i, name in enumerate(names)
    }
    for module_name, layer in masked.items():
        parent, _, child = module_name.rpartition(".")
        setattr(model.get_submodule(parent), child, layer)


def _masked(
    layer: nn.Module, name: str, density: float, kind: str, seed: int, kernel: str
) -> nn.Module:
    if type(layer) in (nn.Linear, NonDynamicallyQuantizableLinear):
        masked = MaskedLinear(
            layer.in_features,
            layer.out_features,
            bias=layer.bias is not None,
            density=density,
            mask_kind=kind,
            seed=seed,
            kernel=kernel,
            device=layer.weight.device,
        )
        masked.weight, masked.bias = layer.weight, layer.bias
        masked.apply_mask_()
        return masked
    if type(layer).__name__ == "Conv1D" and hasattr(layer, "nf"):
        return MaskedConv1D(layer, density, kind, seed, kernel)
    raise ConfigError(
        f"{name} is a hidden matrix of a {type(layer).__name__}: only nn.Linear and GPT-2's "
        "Conv1D layers can be made sparse (density 1 leaves it dense)"
    )
