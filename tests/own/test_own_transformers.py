"""hptransfer.own on Hugging Face models built offline from small configs: Llama, GPT-2
(Conv1D, tied embeddings, biases) and Qwen2 (biased q/k/v): roles and SPEC's rules, the same
table as hptransfer's own LLaMA block, bit-identity at the base shape, sparse layers."""

import math
import re

import pytest
import torch

import hptransfer.own as hpo
from hptransfer.config import ModelConfig, RunConfig
from hptransfer.models import describe, forward_scales
from hptransfer.param import BaseHPs, BaseShape
from tests.own.models import actual, expected, lm_loss

transformers = pytest.importorskip("transformers")
VOCAB = 61


def llama(width, depth=2, heads=4):
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=width,
        intermediate_size=2 * 4 * width // 3,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=32,
        tie_word_embeddings=False,
    )
    return transformers.LlamaForCausalLM(config)


def gpt2(width, depth=2, heads=4):
    config = transformers.GPT2Config(
        vocab_size=VOCAB,
        n_embd=width,
        n_layer=depth,
        n_head=heads,
        n_positions=32,
        bos_token_id=0,
        eos_token_id=0,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return transformers.GPT2LMHeadModel(config)


def qwen2(width, depth=2, heads=4):
    config = transformers.Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=width,
        intermediate_size=3 * width,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        num_key_value_heads=heads // 2,
        max_position_embeddings=32,
        tie_word_embeddings=True,
    )
    return transformers.Qwen2ForCausalLM(config)


FAMILIES = {
    "llama": (llama, {"self_attn.o_proj.weight", "mlp.down_proj.weight"}),
    "gpt2": (gpt2, {"attn.c_proj.weight", "mlp.c_proj.weight"}),
    "qwen2": (qwen2, {"self_attn.o_proj.weight", "mlp.down_proj.weight"}),
}


def parametrized(build, width, p="supar", density=1.0, **kw):
    model = build(width)
    hpo.parametrize(
        model,
        base=lambda: build(64),
        delta=lambda: build(128),
        parameterization=p,
        density=density,
        hps={"weight_decay": 0.1},
        seed=0,
        **kw,
    )
    return model


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(("p", "density"), [("sp", 0.25), ("mup", 1.0), ("supar", 0.25)])
def test_roles_and_every_parameter_follow_spec(family, p, density):
    build, residual = FAMILIES[family]
    model = parametrized(build, 256, p, density)
    table = hpo.table_of(model)
    assert (table.width.base, table.width.model) == (64, 256)
    kinds = {}
    for row in table.rows:
        suffix = re.sub(r"^.*?\.(h|layers)\.\d+\.", "", row.name)
        want = expected(
            row, m_d=4, m_rho=density, p=p, residual=suffix in residual, depth=2, wd=0.1
        )
        assert actual(row) == pytest.approx(want, rel=1e-12), row.name
        kinds.setdefault(row.role.value, []).append(row.name)
    assert len(kinds["embedding"]) == (2 if family == "gpt2" else 1)
    assert len(kinds.get("readout", [])) == (1 if family == "llama" else 0)  # others tied
    assert all(n.endswith(("bias", "weight")) for n in kinds["vector"])
    attn = next(m for n, m in model.named_modules() if n.endswith(("0.self_attn", "0.attn")))
    if p == "sp":
        assert table.outputs == {} and attn.scaling == 64**-0.5
    else:
        assert table.outputs == {"lm_head": ("readout", 0.25)}  # tied or not
        assert attn.scaling == pytest.approx(math.sqrt(16) / 64)  # √d₀/d_head
    assert not table.unreached


def own_llama_rows(p, width, depth, base_depth):
    run = RunConfig(
        model=ModelConfig(
            block="llama",
            width=width,
            depth=depth,
            heads=4,
            context=32,
            input_size=VOCAB,
            output_size=VOCAB,
            density=0.25,
        ),
        hps=BaseHPs(weight_decay=0.1),
        base=BaseShape(width=64, depth=base_depth),
        parameterization=p,
    )
    return {row.name: row for row in describe(run)}, forward_scales(run)


HF_TO_OWN = [
    (r"model\.embed_tokens\.", "tok_emb."),
    (r"model\.layers\.(\d+)\.self_attn\.[qkv]_proj\.", r"blocks.\1.attn.qkv."),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj\.", r"blocks.\1.attn.proj."),
    (r"model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.", r"blocks.\1.ffn.\2."),
    (r"model\.layers\.(\d+)\.input_layernorm\.", r"blocks.\1.ln_attn."),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.", r"blocks.\1.ln_ffn."),
    (r"model\.norm\.", "ln_f."),
    (r"lm_head\.", "head."),
]


def own_name(name):
    for pattern, replacement in HF_TO_OWN:
        name = re.sub(pattern, replacement, name)
    return name


@pytest.mark.parametrize(
    ("p", "depth"), [("sp", 2), ("supar", 2), ("supar+completep", 4), ("mup+completep=0.5", 8)]
)
def test_hf_llama_and_hptransfers_llama_block_give_the_same_table(p, depth):
    model = llama(256, depth)
    table = hpo.parametrize(
        model,
        base=lambda: llama(64, 2),
        parameterization=p,
        density=0.25,
        hps={"weight_decay": 0.1},
    )
    own_rows, scales = own_llama_rows(p, 256, depth, 2)
    fields = ("role", "density", "init_std", "fill", "lr", "multiplier", "weight_decay", "eps")
    for row in table.rows:
        theirs = own_rows[own_name(row.name)]
        assert [getattr(row, f) for f in fields] == [getattr(theirs, f) for f in fields], row.name
    assert {own_name(r.name) for r in table.rows} == set(own_rows)
    assert table.outputs.get("lm_head", ("readout", 1.0))[1] == pytest.approx(scales.readout)
    branches = {v for what, v in table.outputs.values() if what == "residual"} or {1.0}
    assert branches == {scales.residual}
    assert sorted(set(table.attention.values())) == pytest.approx([scales.attention])


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_sp_mup_supar_bit_identical_at_the_base_shape(family):
    build, _ = FAMILIES[family]
    models = [parametrized(build, 64, p) for p in ("sp", "mup", "supar")]
    states = [m.state_dict() for m in models]
    assert all(torch.equal(states[0][k], s[k]) for s in states[1:] for k in states[0])
    losses = [lm_loss(m, steps=2, vocab=VOCAB) for m in models]
    assert losses[0] == losses[1] == losses[2]


def test_gpt2_conv1d_layers_become_sparse_and_stay_sparse():
    model = parametrized(gpt2, 128, density=0.25)
    layer = model.transformer.h[0].mlp.c_fc
    assert type(layer).__name__ == "MaskedConv1D" and layer.mask.shape == layer.weight.shape
    assert layer.mask.float().mean().item() == pytest.approx(0.25)
    x = torch.randn(3, 128)
    assert torch.allclose(layer(x), x @ (layer.weight * layer.mask) + layer.bias, atol=1e-6)
    lm_loss(model, steps=2, vocab=VOCAB)
    assert (layer.weight[~layer.mask] == 0).all()
    assert "transformer.h.1.attn.c_attn.mask" in model.state_dict()
