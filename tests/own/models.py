"""A user's own model for the tests (tied embeddings, its own attention through
F.scaled_dot_product_attention, LayerNorm, biases), and docs/parameterizations.md's rules
written out."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import hptransfer.own as hpo
from hptransfer.config import BaseHPs, BaseShape, DataConfig, ModelConfig, RunConfig, TrainConfig
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


def train_loop(*, model, optimizer, scheduler, batches, budget, report, smoothing=0.0) -> None:
    """A user's training function (``train: {kind: python, fn: tests.own.models:train_loop}``):
    at ``smoothing`` 0 the steps hptransfer's own loop takes."""
    for step, (x, y) in batches:
        optimizer.zero_grad(set_to_none=True)
        with budget.autocast():
            logits = model(x)
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), y.reshape(-1), label_smoothing=smoothing
            )
        loss.backward()
        if budget.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), budget.grad_clip)
        optimizer.step()
        scheduler.step()
        report(step, loss.item())


def train_smoothed(**session) -> None:
    """``train_loop`` with label smoothing: another recipe than hptransfer's."""
    train_loop(**session, smoothing=0.1)


def train_recording_lrs(**session) -> None:
    """``train_loop``; first, on rank 0, the LR each parameter starts at (by name, without
    ``torch.compile``'s prefix) as JSON into the file ``$HPT_TEST_LRS``."""
    model, optimizer = session["model"], session["optimizer"]
    names = {id(p): n.replace("_orig_mod.", "") for n, p in model.named_parameters()}
    lrs = {names[id(p)]: g["initial_lr"] for g in optimizer.param_groups for p in g["params"]}
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        Path(os.environ["HPT_TEST_LRS"]).write_text(json.dumps(lrs))
    train_loop(**session)


def train_two_steps(*, batches, report, **session) -> None:
    """Reports two steps and returns: a function that stops short of its budget."""
    for step, _ in batches:
        if step > 2:
            return
        report(step, 1.0)


def train_raising(**session) -> None:
    raise RuntimeError("out of memory in my loop")


def not_a_module(**shape: int) -> str:
    """A builder that returns something else than a module (a bad-input case)."""
    return "TinyLM"


BUILD = "tests.own.models:build"


def python_run(
    p: str = "supar",
    width: int = 32,
    density: float = 1.0,
    build: str = BUILD,
    fn: str | None = None,
) -> RunConfig:
    """A run of the builder above (base width 32), trained by hptransfer's loop or by ``fn``."""
    return RunConfig(
        model=ModelConfig(
            kind="python", build=build, width=width, depth=2, heads=2, context=16, density=density
        ),
        data=DataConfig(corpus="synthetic", batch_size=4, seq_len=16, eval_batches=2),
        train=TrainConfig(steps=3, warmup_steps=1, kind="python" if fn else "builtin", fn=fn),
        hps=BaseHPs(lr=2**-6, weight_decay=0.1),
        base=BaseShape(width=32),
        parameterization=p,
    )


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
