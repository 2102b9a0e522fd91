"""The coordinate check of a Hugging Face ``LlamaForCausalLM`` under SμPar and SP.

Builds the model from a small config (no hub access), parametrizes it with
:func:`hptransfer.own.parametrize` at every width and density, trains a few Adam steps on
Shakespeare and writes the same Parquet and figures as ``hptransfer coord-check``. Run:

    python examples/coord_check_hf_llama.py --out results/own_llama_coord
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

import hptransfer.own as hpo
from hptransfer.config import DataConfig, parse_fraction
from hptransfer.coord_check import write_report
from hptransfer.data import load_dataset


def llama(width: int, vocab: int, depth: int, heads: int, context: int) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=width,
        intermediate_size=2 * 4 * width // 3,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=context,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="64,128,256,512")
    parser.add_argument("--densities", default="1,1/2,1/4,1/8,1/16")
    parser.add_argument("-p", "--parameterizations", default="sp,supar")
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--lr", type=float, default=2.0**-9)
    parser.add_argument("--out", default="results/own_llama_coord")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = DataConfig(corpus="shakespeare", batch_size=args.batch_size, seq_len=args.seq_len)
    dataset = load_dataset(data)
    widths = [int(w) for w in args.widths.split(",")]

    def build(width: int) -> LlamaForCausalLM:
        return llama(width, dataset.input_size, args.depth, args.heads, args.seq_len)

    records = hpo.coord_check(
        build,
        widths,
        [parse_fraction(d) for d in args.densities.split(",")],
        lambda generator: dataset.train_batch(args.batch_size, args.seq_len, generator),
        parameterizations=args.parameterizations.split(","),
        steps=args.steps,
        seeds=[int(s) for s in args.seeds.split(",")],
        hps={"lr": args.lr},
        zero_readout=True,
        progress=lambda i, n, what: print(f"\r[{i}/{n}] {what}   ", end="", file=sys.stderr),
    )
    print(file=sys.stderr)
    worst = write_report(records, Path(args.out), max(widths), widths[0], args.depth)
    print("largest max/min ratio over layer groups and steps (1 = flat):")
    print(worst.round(2).to_string())


if __name__ == "__main__":
    main()
