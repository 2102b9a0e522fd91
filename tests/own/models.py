"""A user's own model for the tests (tied embeddings, its own attention through
F.scaled_dot_product_attention, LayerNorm, biases), and docs/parameterizations.md's rules
written out."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

import hptransfer.own as hpo
from hptransfer.param import ParamHP

VOCAB, CONTEXT = 61, 16


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.scaling = self.head_dim**-0.5
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        y = hpo.scaled_dot_product_attention(self, q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.up, self.down = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.down(F.gelu(self.up(self.norm2(x))))


class TinyLM(nn.Module):
    """Token ids → logits; the head shares the token embedding's tensor."""

    def __init__(
        self, width: int = 32, depth: int = 2, heads: int = 4, vocab: int = VOCAB, context=CONTEXT
    ) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.tokens.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tokens(idx) + self.positions(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def build(*, width: int, depth: int, heads: int, context: int, vocab: int, outputs: int) -> TinyLM:
    """The builder a spec names (``model: {kind: python, build: tests.own.models:build}``)."""
    return TinyLM(width, depth, heads, vocab, context)


def not_a_module(**shape: int) -> str:
    """A builder that returns something else than a module (a bad-input case)."""
    return "TinyLM"


def lm_loss(model: nn.Module, steps: int = 3, seed: int = 0, vocab: int = VOCAB) -> list[float]:
    """Train ``steps`` AdamW steps on random tokens with the parametrized groups."""
    optimizer = hpo.build_optimizer(model)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, vocab, (2, CONTEXT), generator=generator)
        logits = model(idx)
        logits = getattr(logits, "logits", logits)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, vocab), idx[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def expected(
    row: ParamHP,
    *,
    m_d: float,
    m_rho: float,
    p: str,
    residual: bool,
    depth: int,
    sigma: float = 0.02,
    lr: float = 2**-7,
    wd: float = 0.0,
    alpha_out: float = 1.0,
) -> dict[str, float]:
    """docs/parameterizations.md's table (Adam, independent weight decay), per role."""
    width_rules = p != "sp"
    scale = m_d * (m_rho if p == "supar" else 1.0) if width_rules else 1.0
    residual_init = 1 / math.sqrt(2 * depth) if residual else 1.0
    rows = {
        "embedding": (sigma, lr, 1.0, wd),
        "hidden": (sigma / math.sqrt(scale) * residual_init, lr / scale, 1.0, wd * scale),
        "readout": (sigma, lr, alpha_out / m_d if width_rules else alpha_out, wd),
        "vector": (0.0, lr, 1.0, 0.0),
    }
    init, rate, mult, decay = rows[row.role.value]
    return {"init_std": init, "lr": rate, "multiplier": mult, "weight_decay": decay}


def actual(row: ParamHP) -> dict[str, float]:
    init = 0.0 if row.fill is not None else row.init_std
    return {
        "init_std": init,
        "lr": row.lr,
        "multiplier": row.multiplier,
        "weight_decay": row.weight_decay,
    }
