"""A LLaMA-style block (``model.block: llama``): RMSNorm, rotary positions, SwiGLU, no biases.

It declares its roles the way the GPT-2 block does, by layer type (:mod:`.roles`): the
attention projections and the three SwiGLU matrices are :class:`MaskedLinear` (hidden,
sparse), the RMSNorm gains vector-like. The model around it (:class:`~.gpt.GPT`) drops the
learned position embedding, since rotary embeddings put positions into q and k.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hptransfer.config import ModelConfig
from hptransfer.models.roles import ResidualBlock
from hptransfer.models.sparse import MaskedLinear

ROPE_BASE = 10_000.0
SPARSE_LAYERS = 5  # per block (qkv, proj, gate, up, down): each takes its own mask seed
# The model's sparse-layer builders: (fan_in, fan_out, mask seed offset) for a hidden
# linear, (fan_in, offset) for a projection back into the residual stream.
Linear = Callable[[int, int, int], MaskedLinear]
Residual = Callable[[int, int], MaskedLinear]


def swiglu_hidden(cfg: ModelConfig) -> int:
    """SwiGLU's hidden width: 2/3 of ``ffn_mult · width`` (LLaMA's choice), so its three
    matrices hold as many weights as a GELU FFN's two."""
    return 2 * cfg.ffn_mult * cfg.width // 3


def rotate(x: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of (B, heads, T, head_dim) queries or keys.

    Channel i of the first half and channel i of the second half form a pair rotated by the
    angle ``t · ROPE_BASE^(−2i/head_dim)`` at position t (the GPT-NeoX layout).
    """
    time, dim = x.shape[-2], x.shape[-1]
    inv_freq = ROPE_BASE ** (-torch.arange(0, dim, 2, device=x.device, dtype=torch.float32) / dim)
    angles = torch.arange(time, device=x.device, dtype=torch.float32)[:, None] * inv_freq
    cos, sin = (f(angles).repeat(1, 2).to(x.dtype) for f in (torch.cos, torch.sin))
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-second, first), dim=-1) * sin


class LlamaAttention(nn.Module):
    def __init__(
        self, cfg: ModelConfig, scale: float | None, linear: Linear, residual: Residual
    ) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.scale = scale
        self.qkv = linear(cfg.width, 3 * cfg.width, 0)
        self.proj = residual(cfg.width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, width = x.shape
        # (B, T, 3·C) -> 3 × (B, heads, T, head_dim)
        q, k, v = self.qkv(x).view(batch, time, 3, self.heads, width // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(
            rotate(q), rotate(k), v, is_causal=True, scale=self.scale
        )
        return self.proj(y.transpose(1, 2).reshape(batch, time, width))


class SwiGLU(nn.Module):
    """down(silu(gate(x)) · up(x))."""

    def __init__(self, cfg: ModelConfig, linear: Linear, residual: Residual) -> None:
        super().__init__()
        hidden = swiglu_hidden(cfg)
        self.gate = linear(cfg.width, hidden, 2)
        self.up = linear(cfg.width, hidden, 3)
        self.down = residual(hidden, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class LlamaBlock(ResidualBlock):
    """Pre-norm: x + attn(rms(x)), then + swiglu(rms(x)), each branch × ``branch`` (the depth
    rules' m_L^(−α)). The model passes the builders of its sparse layers (the same as the
    GPT-2 block's, with their init factors)."""

    def __init__(
        self,
        cfg: ModelConfig,
        scale: float | None,
        linear: Linear,
        residual: Residual,
        branch: float = 1.0,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(branch)
        self.ln_attn = nn.RMSNorm(cfg.width, device=device)
        self.attn = LlamaAttention(cfg, scale, linear, residual)
        self.ln_ffn = nn.RMSNorm(cfg.width, device=device)
        self.ffn = SwiGLU(cfg, linear, residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.add(x, self.attn(self.ln_attn(x)))
        return self.add(x, self.ffn(self.ln_ffn(x)))
