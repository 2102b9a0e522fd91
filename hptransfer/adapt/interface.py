"""The attention logit scale through transformers' attention interface.

Some transformers families keep no ``scaling`` attribute on their attention module
(ModernBERT passes ``scaling=self.head_dim**-0.5``; CLIP, SigLIP and their kin a ``scale``
attribute; a few pass none, which means 1/√d_head): their ``forward`` hands the logit scale to
the function ``config._attn_implementation`` names in ``ALL_ATTENTION_FUNCTIONS``. Such a
module is reached by naming, on its config, a function registered here (``hptransfer:<inner>``)
that multiplies that scale by the module's ``logit_ratio`` (a float on the module, off the
tensors) and calls the implementation the model was configured with (``sdpa``, ``eager`` (the
family's own), a flash kernel...). The inner implementation's mask function is registered
under the same name, so the masks the model builds are unchanged.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

PREFIX = "hptransfer:"


@functools.cache
def _forward_dispatches(cls: type) -> bool:
    try:
        source = inspect.getsource(cls.forward)
    except (OSError, TypeError):
        return False
    return "ALL_ATTENTION_FUNCTIONS" in source


def dispatches(module: nn.Module) -> bool:
    """Whether ``module``'s forward calls the attention function its config names."""
    implementation = getattr(getattr(module, "config", None), "_attn_implementation", None)
    return isinstance(implementation, str) and _forward_dispatches(type(module))


def _scaled(inner: Callable[..., Any]) -> Callable[..., Any]:
    def attention(
        module: nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float | None = None,
        **kwargs: Any,
    ) -> Any:
        if scaling is None:
            scaling = query.shape[-1] ** -0.5
        scaling = scaling * getattr(module, "logit_ratio", 1.0)
        return inner(module, query, key, value, attention_mask, scaling=scaling, **kwargs)

    return attention


def _register(module: nn.Module, inner: str) -> str | None:
    """Register the scaled twin of ``inner`` (and its mask function); returns its name, or
    None where ``inner`` is not found."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    if inner == "eager":  # not in the registry: the family's own, its forward's default
        family = type(module).__module__
        function = getattr(sys.modules.get(family), "eager_attention_forward", None)
        name = f"{PREFIX}eager:{family}"
    else:
        function, name = AttentionInterface._global_mapping.get(inner), PREFIX + inner
    if function is None:
        return None
    if name not in AttentionInterface._global_mapping:
        AttentionInterface.register(name, _scaled(function))
    mask = AttentionMaskInterface._global_mapping.get(inner)
    if mask is not None and name not in AttentionMaskInterface._global_mapping:
        AttentionMaskInterface.register(name, mask)
    return name


def route(module: nn.Module, ratio: float) -> bool:
    """Multiply ``module``'s logit scale by ``ratio`` through its config's attention
    implementation; False where that implementation cannot be wrapped. Idempotent: a module
    routed before keeps its implementation and takes the new ratio."""
    config = module.config
    current = config._attn_implementation
    if not current.startswith(PREFIX):
        name = _register(module, current)
        if name is None:
            return False
        config._attn_implementation = name
    module.logit_ratio = ratio
    return True
