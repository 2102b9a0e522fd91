"""Your own model in your own PyTorch loop, under SμPar.

A small decoder written here (tied embeddings, its own attention through
``F.scaled_dot_product_attention``) is parametrized at a wide, sparse target shape with base
HPs tuned at width 64, dense: from a fitted sweep (``--fit results/<sweep>``: its fit.json,
moved to this run's budget) or given on the command line. Then a plain loop trains it with
the per-parameter optimizer groups and the LR schedule. Run:

    python examples/own_loop.py --width 256 --density 0.25 --steps 200
"""

from __future__ import annotations

import argparse
import functools

import torch
import torch.nn.functional as F
from torch import nn

import hptransfer.own as hpo
from hptransfer.config import DataConfig, TrainConfig
from hptransfer.data import load_dataset
from hptransfer.optim import lr_factor_at


class Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.scaling = self.head_dim**-0.5  # hptransfer.own sets μP's scale here
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.out = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scaling)
        return self.out(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.up, self.down = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.down(F.gelu(self.up(self.norm2(x))))


class Decoder(nn.Module):
    def __init__(self, vocab: int, width: int, depth: int, context: int, heads: int = 4):
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocab, width), nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.tokens.weight  # tied

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tokens(idx) + self.positions(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def main(argv: list[str] | None = None) -> list[float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--density", type=float, default=0.25)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--base-width", type=int, default=64)
    parser.add_argument("--fit", help="a fitted sweep folder: its base HPs, moved to --steps")
    parser.add_argument("--lr", type=float, default=2.0**-6, help="base η (without --fit)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    dataset = load_dataset(DataConfig(corpus="shakespeare", seq_len=args.seq_len))

    def build(width: int) -> Decoder:
        return Decoder(dataset.input_size, width, args.depth, args.seq_len)

    model = build(args.width)
    if args.fit:
        recipe = hpo.from_fit(
            model,
            args.fit,
            base=lambda: build(args.base_width),
            density=args.density,
            steps=args.steps,
            batch=args.batch_size,
        )
        optimizer, schedule = recipe.optimizer(model), recipe.lr_factor
    else:
        hpo.parametrize(
            model,
            base=lambda: build(args.base_width),
            parameterization="supar",
            density=args.density,
            hps={"lr": args.lr, "weight_decay": 0.1},
            seed=0,
        )
        train = TrainConfig(steps=args.steps, warmup_steps=args.steps // 10)
        optimizer = hpo.build_optimizer(model, betas=train.betas)
        schedule = functools.partial(lr_factor_at, train=train)
    hpo.describe(model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for step in range(args.steps):
        x, y = dataset.train_batch(args.batch_size, args.seq_len, generator)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if (step + 1) % max(1, args.steps // 10) == 0:
            print(f"step {step + 1}: train loss {loss.item():.4f}")
    return losses


if __name__ == "__main__":
    main()
