"""Models and sparse layers: μP reductions, masks, roles."""

import dataclasses
import io
import math

import pytest
import torch

from hptransfer.config import RunConfig
from hptransfer.data import load_dataset
from hptransfer.errors import ConfigError
from hptransfer.models import MaskedLinear, build_model, describe, draw_mask, param_specs
from hptransfer.param import PARAMETERIZATIONS, BaseShape, Role
from hptransfer.runtime.identity import config_hash, run_key
from hptransfer.train import complete_run, train
from tests.conftest import tiny_gpt_run, tiny_mlp_run


def with_p(run: RunConfig, p: str, **model) -> RunConfig:
    return dataclasses.replace(run, parameterization=p, model=run.model.replace(**model))


@pytest.mark.parametrize("make", [tiny_gpt_run, tiny_mlp_run])
def test_all_parameterizations_identical_at_base_shape(make):
    """m_d = m_rho = 1: SP, μP, SμPar and SμPar's init or LR rule alone are the same model, bit
    for bit, through training."""
    results = [train(with_p(make(), p)) for p in PARAMETERIZATIONS]
    curves = [[(pt["train_loss"], pt["val_loss"]) for pt in r.curve] for r in results]
    assert len(curves) == 5 and all(curve == curves[0] for curve in curves)
    assert len({run_key(with_p(make(), p)) for p in PARAMETERIZATIONS}) == 1  # trained once


def test_supar_equals_mup_at_density_one_at_any_width(gpt_run):
    wide = dataclasses.replace(gpt_run, base=BaseShape(width=16))  # m_d = 2
    mup, supar = (train(with_p(wide, p)) for p in ("mup", "supar"))
    assert mup.curve == supar.curve


def test_supar_differs_from_mup_when_sparse(gpt_run):
    mup, supar = (train(with_p(gpt_run, p, density=0.25)) for p in ("mup", "supar"))
    assert mup.curve != supar.curve


@pytest.mark.parametrize("kind", ["random", "row_balanced", "block"])
def test_mask_density_and_determinism(kind):
    g = torch.Generator().manual_seed(3)
    mask = draw_mask(512, 1024, 0.125, kind=kind, block=32, generator=g)
    assert mask.dtype == torch.bool and mask.shape == (512, 1024)
    assert abs(mask.float().mean().item() - 0.125) < 0.01 * 0.125 + 1e-3
    again = draw_mask(
        512, 1024, 0.125, kind=kind, block=32, generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(mask, again)


def test_row_balanced_and_block_structure():
    rows = draw_mask(8, 64, 0.25, kind="row_balanced", generator=torch.Generator().manual_seed(0))
    assert (rows.sum(1) == 16).all()
    block = draw_mask(
        64, 96, 0.5, kind="block", block=16, generator=torch.Generator().manual_seed(0)
    )
    tiles = block.view(4, 16, 6, 16).permute(0, 2, 1, 3).reshape(24, -1)
    assert ((tiles.all(1)) | (~tiles.any(1))).all()  # every tile all-on or all-off


def test_mask_survives_state_dict_round_trip():
    layer = MaskedLinear(64, 32, density=0.25, seed=1)
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    other = MaskedLinear(64, 32, density=0.25, seed=2)  # would draw a different mask
    assert not torch.equal(layer.mask, other.mask)
    buffer.seek(0)
    other.load_state_dict(torch.load(buffer))
    assert torch.equal(layer.mask, other.mask)
    assert (other.weight[~other.mask] == 0).all()


def test_loading_nonzero_masked_weights_re_zeroes_them():
    layer = MaskedLinear(16, 8, density=0.5)
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    state["weight"].fill_(1.0)
    layer.load_state_dict(state)
    assert (layer.weight[~layer.mask] == 0).all() and (layer.weight[layer.mask] == 1).all()


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_masked_weights_stay_zero_and_get_zero_gradient(optimizer):
    run = tiny_gpt_run(density=0.25)
    run = dataclasses.replace(run, train=dataclasses.replace(run.train, optimizer=optimizer))
    model = build_model(dataclasses.replace(run, model=run.model.replace(input_size=32)))
    from hptransfer.models import plan_parameters
    from hptransfer.optim import build_optimizer

    opt = build_optimizer(model, plan_parameters(model, run), run.train)
    layers = [m for m in model.modules() if isinstance(m, MaskedLinear)]
    for _ in range(4):
        x = torch.randint(0, 32, (4, 16))
        loss = model(x).logsumexp(-1).mean()
        opt.zero_grad()
        loss.backward()
        for layer in layers:
            assert (layer.weight.grad[~layer.mask] == 0).all()
        opt.step()
    for layer in layers:
        assert (layer.weight[~layer.mask] == 0).all()
        assert (layer.weight[layer.mask] != 0).all()


def test_forward_equals_reference_masked_product():
    layer = MaskedLinear(24, 16, density=0.3, seed=5)
    x = torch.randn(3, 5, 24)
    expected = torch.nn.functional.linear(x, layer.weight * layer.mask, layer.bias)
    torch.testing.assert_close(layer(x), expected)


def test_every_parameter_has_one_role(gpt_run):
    run = dataclasses.replace(gpt_run, model=gpt_run.model.replace(input_size=32))
    model = build_model(run)
    specs = param_specs(model)
    assert set(specs) == {n for n, _ in model.named_parameters()}
    assert specs["tok_emb.weight"].role is Role.EMBEDDING
    assert specs["head.weight"].role is Role.READOUT
    assert specs["blocks.0.attn.qkv.weight"].role is Role.HIDDEN
    assert specs["blocks.1.ffn.down.weight"].init_scale == pytest.approx(0.5)  # 1/√(2·2)
    assert specs["blocks.0.ln_attn.weight"].role is Role.VECTOR


def test_tied_embeddings_share_one_parameter(gpt_run):
    run = dataclasses.replace(
        gpt_run, model=gpt_run.model.replace(input_size=32, tied_embeddings=True)
    )
    names = [row.name for row in describe(run)]
    assert "head.weight" not in names and "tok_emb.weight" in names
    assert train(run).val_loss < 10


@pytest.mark.parametrize(("make", "head"), [(tiny_gpt_run, "head"), (tiny_mlp_run, "readout")])
def test_zero_initialised_readout_starts_at_zero_and_learns(make, head):
    """μP practice: the readout weight starts at 0 (same role, LR and multiplier), the first
    update moves it, and the rest of the model is initialised as without the option."""
    raw = make(readout_zero_init=True)
    run = complete_run(raw, load_dataset(raw.data))
    plain = dataclasses.replace(run, model=run.model.replace(readout_zero_init=False))
    zero, normal = build_model(run), build_model(plain)
    weight = getattr(zero, head).weight
    assert torch.count_nonzero(weight) == 0 and torch.count_nonzero(getattr(normal, head).weight)
    assert param_specs(zero)[f"{head}.weight"].role is Role.READOUT
    others = [n for n in dict(zero.named_parameters()) if not n.startswith(head)]
    state, reference = zero.state_dict(), normal.state_dict()
    assert all(torch.equal(state[n], reference[n]) for n in others)
    assert {r.name: r.lr for r in describe(run)} == {r.name: r.lr for r in describe(plain)}
    classes = run.model.output_size or run.model.input_size
    longer = dataclasses.replace(run, train=dataclasses.replace(run.train, steps=40))
    assert train(longer).val_loss < math.log(classes) - 0.05  # it starts from uniform


def test_zero_initialised_readout_is_refused_when_tied_and_hashes_as_before_when_off():
    with pytest.raises(ConfigError, match="readout_zero_init needs an untied readout"):
        tiny_gpt_run(tied_embeddings=True, readout_zero_init=True)
    off = tiny_gpt_run()
    assert "readout_zero_init" not in off.model.to_dict()
    assert off.model.to_dict() == {
        k: v
        for k, v in dataclasses.asdict(off.model).items()
        if k not in ("readout_zero_init", "block", "build")  # block: not gpt2; build: python
    }
    assert config_hash(off) != config_hash(tiny_gpt_run(readout_zero_init=True))


def test_plan_of_huge_model_builds_no_weights():
    run = tiny_gpt_run(width=16384, heads=128, density=0.125, input_size=256)
    rows = describe(run)
    qkv = next(r for r in rows if r.name == "blocks.0.attn.qkv.weight")
    assert qkv.shape == (3 * 16384, 16384) and qkv.density == 0.125


def test_realised_density_reported():
    layer = MaskedLinear(256, 256, density=0.125)
    assert layer.realised_density == pytest.approx(0.125, abs=1e-3)
    assert MaskedLinear(8, 8).realised_density == 1.0


def attention_logit_scale(run: RunConfig) -> float:
    """The scale the first block's attention applies to qᵀk, measured from its output."""
    model = build_model(run)
    attn = model.blocks[0].attn
    x = torch.randn(1, 6, run.model.width, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = attn(x)
        heads, d_head = run.model.heads, run.model.head_dim
        q, k, v = attn.qkv(x).view(1, 6, 3, heads, d_head).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        causal = torch.ones(6, 6, dtype=torch.bool).tril()
        for scale in (1 / d_head**0.5, 32**0.5 / d_head, 8**0.5 / d_head):
            logits = (q @ k.transpose(-1, -2) * scale).masked_fill(~causal, float("-inf"))
            y = (logits.softmax(-1) @ v).transpose(1, 2).reshape(1, 6, run.model.width)
            if torch.allclose(attn.proj(y), out, atol=1e-6):
                return scale
    raise AssertionError("no candidate scale reproduces the attention output")


@pytest.mark.parametrize(("to", "d_head"), [("width=512,heads=16", 32), ("width=512,heads=8", 64)])
def test_mup_attention_keeps_base_head_size_when_heads_change(to, d_head):
    """Base width 128 with 4 heads: d₀ = 32, whatever heads the target has
    (docs/parameterizations.md: logits qᵀk·√d₀/d_head). With 16 heads at width 512, d_head = d₀, so
    μP scales like SP."""
    from hptransfer.cli.targets import parse_target
    from hptransfer.transfer.plan_command import target_run

    base = tiny_gpt_run(width=128, heads=4, depth=1, input_size=64, output_size=64)
    base = dataclasses.replace(base, parameterization="mup", base=BaseShape(width=128))
    target, _ = target_run(base, parse_target(to))
    assert (target.model.head_dim, target.base.heads) == (d_head, 4)
    assert attention_logit_scale(target) == pytest.approx(32**0.5 / d_head)
    # The same width reached without changing heads: d₀ is still the base's 32.
    same_heads = base.retarget(width=512)
    assert attention_logit_scale(same_heads) == pytest.approx(32**0.5 / 128)


def test_base_heads_equal_to_the_model_heads_hash_as_unrecorded(gpt_run):
    """Runs (and so sweep point ids) with a base of the run's own heads are one run."""
    pinned = dataclasses.replace(gpt_run, base=BaseShape(width=32, heads=gpt_run.model.heads))
    assert pinned == gpt_run and pinned.base.heads is None
