"""The base attention logit multiplier α_attn: 1 is today's model, bit for bit, and today's
hashes; otherwise the logits the softmax sees scale by α_attn under every parameterization."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hptransfer.config import RunConfig
from hptransfer.models import build_model
from hptransfer.param import BaseShape
from hptransfer.runtime.identity import config_hash, run_key
from hptransfer.sweep import load_spec
from tests.conftest import tiny_gpt_run

ROOT = Path(__file__).parents[1]
SDPA = F.scaled_dot_product_attention  # the real one, before any test patches it


def with_alpha(run: RunConfig, alpha: float, p: str = "supar") -> RunConfig:
    hps = dataclasses.replace(run.hps, alpha_attn=alpha)
    return dataclasses.replace(run, hps=hps, parameterization=p)


def wide_sparse(block: str = "gpt2") -> RunConfig:
    """Width 64 with the heads of a width-32 base: d_head 32 against d₀ 16, density 1/4."""
    run = tiny_gpt_run(width=64, heads=2, density=0.25, block=block, input_size=32)
    return dataclasses.replace(run, base=BaseShape(width=32, heads=2))


def logits_fed_to_softmax(run: RunConfig, monkeypatch) -> list[torch.Tensor]:
    """Every attention layer's scaled logits qᵀk·scale in one forward pass of the run's model,
    recorded by an explicit attention that must reproduce the one the model calls."""
    seen: list[torch.Tensor] = []

    def recording(q, k, v, *, is_causal, scale):
        logits = q @ k.transpose(-1, -2) * scale
        n = q.shape[-2]
        causal = torch.ones(n, n, dtype=torch.bool).tril()
        out = logits.masked_fill(~causal, float("-inf")).softmax(-1) @ v
        assert torch.allclose(out, SDPA(q, k, v, is_causal=is_causal, scale=scale), atol=1e-6)
        seen.append(logits)
        return out

    model = build_model(run)
    tokens = torch.randint(0, 32, (2, 8), generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(F, "scaled_dot_product_attention", recording)
    with torch.no_grad():
        model(tokens)
    return seen


@pytest.mark.parametrize("block", ["gpt2", "llama"])
@pytest.mark.parametrize("p", ["sp", "supar"])
def test_the_logits_scale_by_alpha_attn(monkeypatch, block, p):
    base = wide_sparse(block)
    plain = logits_fed_to_softmax(with_alpha(base, 1.0, p), monkeypatch)
    scaled = logits_fed_to_softmax(with_alpha(base, 2.5, p), monkeypatch)
    assert len(plain) == len(scaled) == base.model.depth
    # the first layer sees the same q, k under both (later layers' inputs differ)
    assert plain[0].abs().max() > 0
    torch.testing.assert_close(scaled[0], 2.5 * plain[0])


def test_alpha_attn_1_hashes_as_before_and_other_values_do_not():
    """α_attn = 1 written out is the default run: same run key (resolved model and forward
    scales) and point id. That these equal what the code stored before α_attn existed is
    checked on the version-3 fixture (tests/store/test_schema_versions.py)."""
    explicit = with_alpha(gpt_run := tiny_gpt_run(), 1.0, "supar")
    assert explicit == gpt_run and "alpha_attn" not in explicit.hps.to_dict()
    assert (run_key(explicit), config_hash(explicit)) == (run_key(gpt_run), config_hash(gpt_run))
    changed = with_alpha(gpt_run, 2.0, "supar")
    assert run_key(changed) != run_key(gpt_run) and config_hash(changed) != config_hash(gpt_run)
    assert changed.hps.to_dict()["alpha_attn"] == 2.0


def test_a_committed_spec_hashes_as_its_stored_runs():
    """results/default_flow was swept before α_attn existed: its spec still hashes to the
    spec_hash its trials carry (a resumed sweep finds its runs)."""
    spec = load_spec(ROOT / "results" / "default_flow" / "spec.yaml")
    assert "alpha_attn" not in spec.to_dict()["hps"]
    assert spec.hash == "106931fcd27f"
