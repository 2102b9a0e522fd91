"""A spec's builder for Hugging Face's ``LlamaForCausalLM``, built from a config (no hub
access): ``model: {kind: python, build: "examples.hf_llama_model:build", ...}``, run from the
repository root. hptransfer parametrizes it (roles from shapes, μP's attention scale through
each attention module's ``scaling``, masks on the hidden linears) at every run's shape.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM


class Logits(nn.Module):
    """Token ids (B, T) → logits (B, T, vocab): what hptransfer's runs train and evaluate."""

    def __init__(self, model: LlamaForCausalLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=idx).logits


def build(*, width: int, depth: int, heads: int, context: int, vocab: int, outputs: int) -> Logits:
    """Llama at ``width`` with ``depth`` decoder layers (SwiGLU at ~8/3 · width, untied head)."""
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
    return Logits(LlamaForCausalLM(config))
