"""The attention logit scale on Hugging Face families, checked against the logits of a
hand-scaled reference (the same weights, the scale put on the query projection by hand):
GPT-2 through its ``scaling`` attribute; ModernBERT (no attribute: it passes
``head_dim**-0.5``) and CLIP's text tower (a ``scale`` attribute) through transformers'
attention interface, under ``sdpa`` and the family's ``eager``."""

import copy
import warnings

import pytest
import torch

import hptransfer.own as hpo
from hptransfer.adapt import interface
from tests.own import test_own_transformers

transformers = pytest.importorskip("transformers")
VOCAB, WIDTH, BASE, HEADS = 61, 128, 64, 4
RATIO = (BASE // HEADS) ** 0.5 / (WIDTH // HEADS) * (WIDTH // HEADS) ** 0.5  # μP's over SP's


def gpt2(width, implementation="sdpa"):
    assert implementation == "sdpa"
    return test_own_transformers.gpt2(width)


def modernbert(width, implementation="sdpa"):
    config = transformers.ModernBertConfig(
        vocab_size=VOCAB,
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        max_position_embeddings=32,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        cls_token_id=1,
        sep_token_id=2,
        attn_implementation=implementation,
    )
    return transformers.ModernBertForMaskedLM(config)


def clip_text(width, implementation="sdpa"):
    config = transformers.CLIPTextConfig(
        vocab_size=VOCAB,
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        max_position_embeddings=32,
        projection_dim=16,
        bos_token_id=1,
        eos_token_id=2,
        attn_implementation=implementation,
    )
    return transformers.CLIPTextModelWithProjection(config)


def scale_gpt2_query(model, ratio):
    for block in model.transformer.h:
        attn, w = block.attn, model.config.n_embd
        attn.scaling = attn.head_dim**-0.5
        attn.c_attn.weight[:, :w] *= ratio
        attn.c_attn.bias[:w] *= ratio


def scale_modernbert_query(model, ratio):
    for layer in model.model.layers:
        layer.attn.Wqkv.weight[: model.config.hidden_size] *= ratio


def scale_clip_query(model, ratio):
    for layer in model.text_model.encoder.layers:
        layer.self_attn.q_proj.weight *= ratio
        layer.self_attn.q_proj.bias *= ratio


FAMILIES = {
    "gpt2": (gpt2, scale_gpt2_query),
    "modernbert": (modernbert, scale_modernbert_query),
    "clip_text": (clip_text, scale_clip_query),
}
ROUTED = ["modernbert", "clip_text"]


def parametrized(family, width, p="mup", implementation="sdpa"):
    build = FAMILIES[family][0]
    model = build(width, implementation)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no attention left unreached
        table = hpo.parametrize(
            model,
            base=lambda: build(BASE, implementation),
            delta=lambda: build(2 * BASE, implementation),
            parameterization=p,
            hps={"init_std": 0.3},  # logits large enough for their scale to show
            seed=0,
        )
    return model, table


def hand_scaled(family, model, ratio, implementation):
    """A copy of ``model`` with hptransfer's logit scale undone and ``ratio`` put on the
    query projection by hand instead (the logits qᵀk are linear in q)."""
    reference = copy.deepcopy(model)
    reference.config._attn_implementation = implementation
    with torch.no_grad():
        FAMILIES[family][1](reference, ratio)
    return reference


def logits(model):
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (2, 12), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # a padded row: the masks the model builds must be unchanged
    with torch.no_grad():
        out = model.eval()(input_ids=ids, attention_mask=mask)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


@pytest.mark.parametrize(
    ("family", "implementation"),
    [("gpt2", "sdpa"), ("modernbert", "sdpa"), ("modernbert", "eager"), ("clip_text", "sdpa")],
)
def test_logits_equal_a_hand_scaled_reference_off_the_base_width(family, implementation):
    model, table = parametrized(family, WIDTH, implementation=implementation)
    assert table.unreached == ()
    assert list(table.attention.values()) == pytest.approx([(BASE // HEADS) ** 0.5 / 32] * 2)
    ours = logits(model)
    reference = logits(hand_scaled(family, model, RATIO, implementation))
    unscaled = logits(hand_scaled(family, model, 1.0, implementation))
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-4)
    assert (ours - unscaled).abs().max() > 1e-2  # the scale shows


@pytest.mark.parametrize("family", ROUTED)
def test_at_the_base_shape_the_model_is_the_unparametrized_one_bit_for_bit(family):
    for p in ("sp", "mup", "supar"):
        model, table = parametrized(family, BASE, p)
        assert model.config._attn_implementation == "sdpa" and table.unreached == ()
        plain = FAMILIES[family][0](BASE)
        plain.load_state_dict(model.state_dict())
        assert torch.equal(logits(model), logits(plain))


@pytest.mark.parametrize("family", ROUTED)
def test_the_scale_stays_off_the_tensors_and_routing_again_changes_nothing(family):
    model, _ = parametrized(family, WIDTH)
    name = model.config._attn_implementation
    assert name == "hptransfer:sdpa"
    state = model.state_dict()
    assert state.keys() == FAMILIES[family][0](WIDTH).state_dict().keys()
    registered = transformers.AttentionInterface._global_mapping[name]
    second, _ = parametrized(family, WIDTH)  # registered once, shared
    assert second.config._attn_implementation == name
    assert transformers.AttentionInterface._global_mapping[name] is registered
    attention = [m for m in model.modules() if hasattr(m, "logit_ratio")]
    assert attention and all(interface.route(m, RATIO) for m in attention)
    assert model.config._attn_implementation == name
    second.load_state_dict(state)
    torch.testing.assert_close(logits(second), logits(model), rtol=0, atol=0)


@pytest.mark.slow  # inductor compiles ModernBERT's graph: ~1 min on a loaded CPU
def test_the_routed_scale_and_every_lr_hold_under_torch_compile():
    model, table = parametrized("modernbert", WIDTH)
    compiled = torch.compile(model)

    def per_name(groups):
        return {n: (g["lr"], g["weight_decay"], g["eps"]) for g in groups for n in g["names"]}

    want = {row.name: (row.lr, row.weight_decay, row.eps) for row in table.rows}
    assert per_name(hpo.param_groups(compiled)) == want
    ours = logits(compiled)
    torch.testing.assert_close(ours, logits(model), rtol=1e-4, atol=1e-4)
    reference = logits(hand_scaled("modernbert", model, RATIO, "sdpa"))
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-4)
