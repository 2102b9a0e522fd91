"""The attention logit scale on a user's model: μP's √d₀/d_head instead of 1/√d_head.

Three kinds of module are reached. One with a float ``scaling`` attribute its logits are
multiplied by (transformers' families, and a user's own attention by the same convention):
its ``scaling`` is multiplied by the rules' scale over SP's. A transformers attention with no
such attribute whose forward dispatches through transformers' attention interface: its
config names a wrapper of its implementation that multiplies the scale it passes by that
ratio (:mod:`.interface`). ``nn.MultiheadAttention``: it becomes
:class:`ScaledMultiheadAttention`, which multiplies the query projection by that ratio (the
logits qᵀk are linear in q, so this is the same).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hptransfer.adapt import interface, structure
from hptransfer.adapt.shapes import counterpart
from hptransfer.param import SP, Parameterization, attention_scale


class ScaledMultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` with its logits multiplied by ``logit_ratio`` on top of
    torch's 1/√d_head (same parameters, same state dict)."""

    logit_ratio: float = 1.0

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.batch_first:
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        width, ratio = self.embed_dim, self.logit_ratio
        separate = {}
        weight, bias = self.in_proj_weight, self.in_proj_bias
        if self._qkv_same_embed_dim:
            weight = torch.cat((weight[:width] * ratio, weight[width:]))
        else:
            separate = {
                "use_separate_proj_weight": True,
                "q_proj_weight": self.q_proj_weight * ratio,
                "k_proj_weight": self.k_proj_weight,
                "v_proj_weight": self.v_proj_weight,
            }
        if bias is not None:
            bias = torch.cat((bias[:width] * ratio, bias[width:]))
        out, weights = F.multi_head_attention_forward(
            query,
            key,
            value,
            width,
            self.num_heads,
            weight,
            bias,
            self.bias_k,
            self.bias_v,
            self.add_zero_attn,
            self.dropout,
            self.out_proj.weight,
            self.out_proj.bias,
            training=self.training,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
            attn_mask=attn_mask,
            average_attn_weights=average_attn_weights,
            is_causal=is_causal,
            **separate,
        )
        return (out.transpose(0, 1) if self.batch_first else out), weights


def set_attention(
    model: nn.Module,
    base: nn.Module,
    p: Parameterization,
    alpha: float,
    blocks: Sequence[str],
    base_blocks: Sequence[str],
) -> dict[str, float]:
    """Give every reachable attention module the rules' logit scale (d₀ from the base
    build's module of the same place); returns module → scale. At the base head size with
    α_attn = 1 the ratio to SP is exactly 1 and the module is left untouched."""
    scales = {}
    with_scaling = set(structure.scaled_attention(model))
    for name, module in model.named_modules():
        scaled = name in with_scaling
        routed = not scaled and interface.dispatches(module)
        if not (scaled or routed or isinstance(module, nn.MultiheadAttention)):
            continue
        d = structure.head_dim(module)
        if d is None:
            continue
        d0 = structure.head_dim(base.get_submodule(counterpart(name, blocks, base_blocks)))
        ratio = attention_scale(p, d, d0, alpha) / attention_scale(SP, d, d)
        if scaled:
            if ratio != 1.0:
                module.scaling = module.scaling * ratio
            scales[name] = module.scaling
        elif routed:
            if ratio == 1.0 or interface.route(module, ratio):
                scales[name] = ratio / d**0.5
        else:
            if ratio != 1.0:
                module.__class__ = ScaledMultiheadAttention
                module.logit_ratio = ratio
            scales[name] = ratio / d**0.5
    return scales
