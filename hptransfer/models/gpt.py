"""A GPT-style decoder: pre-LN blocks, causal attention, sparse hidden linears.

``model.block`` picks the block: ``gpt2`` (LayerNorm, learned positions, GELU FFN) or
``llama`` (RMSNorm, rotary positions, SwiGLU, no biases; :mod:`.llama`).

The hidden linears (QKV, attention out, FFN up, FFN down) are :class:`MaskedLinear`; embeddings, the
readout and norms stay dense (``docs/parameterizations.md#sparsity``). The parameterization enters
through four forward scales (embedding and readout multipliers, attention logit scale, residual
branch multiplier) and the per-parameter init/LR table that :mod:`hptransfer.param` resolves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hptransfer.config import ModelConfig
from hptransfer.models import llama
from hptransfer.models.roles import Readout, ResidualBlock
from hptransfer.models.sparse import MaskedLinear


@dataclass(frozen=True)
class ForwardScales:
    """Multipliers applied in the forward pass (all 1, and 1/√d_head, under SP at α = 1)."""

    embedding: float = 1.0
    readout: float = 1.0
    attention: float | None = None  # None: 1/√d_head
    residual: float = 1.0  # each residual branch's output: m_L^(−α) under depth rules


def _sparse_linear(
    cfg: ModelConfig, fan_in: int, fan_out: int, seed: int, device, init_scale: float = 1.0
) -> MaskedLinear:
    return MaskedLinear(
        fan_in,
        fan_out,
        bias=cfg.bias,
        density=cfg.density,
        mask_kind=cfg.mask,
        mask_block=cfg.mask_block,
        seed=seed,
        kernel=cfg.kernel,
        init_scale=init_scale,
        device=device,
    )


def _embedding(rows: int, width: int, device) -> nn.Embedding:
    # Uninitialised storage: init_parameters draws every weight, and nn.Embedding's own
    # normal_ on the meta device costs seconds (it loads torch's reference kernels).
    return nn.Embedding(rows, width, _weight=torch.empty(rows, width, device=device))


def _residual(cfg: ModelConfig, fan_in: int, seed: int, device) -> MaskedLinear:
    """A projection back into the residual stream, with GPT-2's 1/√(2·depth) init factor."""
    return _sparse_linear(cfg, fan_in, cfg.width, seed, device, 1.0 / math.sqrt(2 * cfg.depth))


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, scale: float | None, seed: int, device=None) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.scale = scale
        self.qkv = _sparse_linear(cfg, cfg.width, 3 * cfg.width, seed, device)
        self.proj = _residual(cfg, cfg.width, seed + 1, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, width = x.shape
        # (B, T, 3·C) -> 3 × (B, heads, T, head_dim)
        q, k, v = self.qkv(x).view(batch, time, 3, self.heads, width // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        return self.proj(y.transpose(1, 2).reshape(batch, time, width))


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig, seed: int, device=None) -> None:
        super().__init__()
        hidden = cfg.ffn_mult * cfg.width
        self.up = _sparse_linear(cfg, cfg.width, hidden, seed, device)
        self.down = _residual(cfg, hidden, seed + 1, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class Block(ResidualBlock):
    def __init__(self, cfg: ModelConfig, scales: ForwardScales, seed: int, device=None) -> None:
        super().__init__(scales.residual)
        self.ln_attn = nn.LayerNorm(cfg.width, bias=cfg.bias, device=device)
        self.attn = CausalSelfAttention(cfg, scales.attention, seed, device)
        self.ln_ffn = nn.LayerNorm(cfg.width, bias=cfg.bias, device=device)
        self.ffn = FeedForward(cfg, seed + 2, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.add(x, self.attn(self.ln_attn(x)))
        return self.add(x, self.ffn(self.ln_ffn(x)))


def _llama_block(cfg: ModelConfig, scales: ForwardScales, seed: int, device) -> nn.Module:
    return llama.LlamaBlock(
        cfg,
        scales.attention,
        linear=lambda fan_in, fan_out, k: _sparse_linear(cfg, fan_in, fan_out, seed + k, device),
        residual=lambda fan_in, k: _residual(cfg, fan_in, seed + k, device),
        branch=scales.residual,
        device=device,
    )


# block kind -> (builder, sparse layers per block: each takes its own mask seed)
BLOCKS = {"gpt2": (Block, 4), "llama": (_llama_block, llama.SPARSE_LAYERS)}


class GPT(nn.Module):
    """Token ids (B, T) -> logits (B, T, vocab)."""

    def __init__(self, cfg: ModelConfig, scales: ForwardScales, device=None) -> None:
        super().__init__()
        if cfg.input_size is None:
            raise ValueError("GPT needs model.input_size (the vocabulary size)")
        self.cfg = cfg
        self.scales = scales
        vocab = cfg.input_size
        self.tok_emb = _embedding(vocab, cfg.width, device)
        self.pos_emb = None  # LLaMA: positions enter through rotary q and k
        if cfg.block == "gpt2":
            self.pos_emb = _embedding(cfg.context, cfg.width, device)
        block, sparse_layers = BLOCKS[cfg.block]
        self.blocks = nn.ModuleList(
            block(cfg, scales, cfg.mask_seed * 1000 + sparse_layers * i, device)
            for i in range(cfg.depth)
        )
        if cfg.block == "llama":
            self.ln_f = nn.RMSNorm(cfg.width, device=device)
        else:
            self.ln_f = nn.LayerNorm(cfg.width, bias=cfg.bias, device=device)
        self.head = None
        if not cfg.tied_embeddings:
            self.head = Readout(
                cfg.width,
                cfg.output_size or vocab,
                zero_init=cfg.readout_zero_init,
                bias=False,
                device=device,
            )

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(idx.shape[1], device=idx.device))
        x = x * self.scales.embedding
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        weight = self.tok_emb.weight if self.head is None else self.head.weight
        return F.linear(x, weight) * self.scales.readout
