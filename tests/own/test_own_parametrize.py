"""hptransfer.own on a model written here: roles from shapes, SPEC's rules per parameter,
forward multipliers, sparsity, depth, and the table surviving wrappers and a state dict."""

import io
import math
import warnings

import pytest
import torch
from torch import nn

import hptransfer
import hptransfer.own as hpo
from hptransfer.errors import ConfigError
from hptransfer.models import MaskedLinear
from tests.own.models import TinyLM, actual, expected, lm_loss

RESIDUAL = {"attn.out.weight", "down.weight"}


def own(width=64, density=1.0, p="supar", depth=2, base_depth=2, seed=0, **kw):
    model = TinyLM(width, depth)
    hpo.parametrize(
        model,
        base=lambda: TinyLM(32, base_depth),
        delta=lambda: TinyLM(48, base_depth),
        parameterization=p,
        density=density,
        seed=seed,
        hps={"weight_decay": 0.1},
        **kw,
    )
    return model


def roles(model):
    return {row.name: row.role.value for row in hpo.table_of(model).rows}


def test_roles_from_shapes_at_two_widths():
    found = roles(own())
    assert found["tokens.weight"] == found["positions.weight"] == "embedding"
    assert "head.weight" not in found  # tied: one tensor, one role, under its first name
    for name in ("attn.qkv.weight", "attn.out.weight", "up.weight", "down.weight"):
        assert found[f"blocks.0.{name}"] == "hidden"
    for name in ("norm1.weight", "norm1.bias", "attn.qkv.bias", "down.bias"):
        assert found[f"blocks.1.{name}"] == "vector"
    assert found["norm.weight"] == "vector"


@pytest.mark.parametrize("p", ["sp", "mup", "supar"])
@pytest.mark.parametrize("density", [1.0, 0.25])
def test_every_parameter_follows_spec(p, density):
    table = hpo.table_of(own(width=128, density=density, p=p))
    assert table.width.base == 32 and table.width.model == 128
    for row in table.rows:
        residual = row.name.split(".", 2)[-1] in RESIDUAL
        want = expected(row, m_d=4, m_rho=density, p=p, residual=residual, depth=2, wd=0.1)
        assert actual(row) == pytest.approx(want, rel=1e-12), row.name
        hidden = row.role.value == "hidden"
        assert row.density == (density if hidden else 1.0)


def test_forward_multipliers_and_attention_scale():
    model = own(width=128, p="mup")
    table = hpo.table_of(model)
    assert table.outputs == {"head": ("readout", 0.25)}  # the tied tensor as output layer
    attn = model.blocks[0].attn
    assert attn.scaling == pytest.approx(math.sqrt(8) / 32)  # √d₀/d_head, d₀ = 32/4
    x = torch.randn(2, 128)
    assert torch.equal(model.head(x), torch.nn.functional.linear(x, model.tokens.weight) * 0.25)
    assert not table.unreached


def test_sp_mup_supar_bit_identical_at_the_base_shape():
    losses = [lm_loss(own(width=32, p=p)) for p in ("sp", "mup", "supar")]
    models = [own(width=32, p=p) for p in ("sp", "mup", "supar")]
    states = [m.state_dict() for m in models]
    assert all(torch.equal(states[0][k], s[k]) for s in states[1:] for k in states[0])
    assert losses[0] == losses[1] == losses[2]


def test_supar_is_mup_at_density_one_and_differs_when_sparse():
    assert lm_loss(own(width=64, p="mup")) == lm_loss(own(width=64, p="supar"))
    assert lm_loss(own(width=64, p="mup", density=0.5)) != lm_loss(own(width=64, density=0.5))


def test_sparse_hidden_linears_and_masks_in_the_state_dict():
    model = own(width=64, density=0.25)
    layer = model.blocks[0].up
    assert isinstance(layer, MaskedLinear) and layer.realised_density == pytest.approx(0.25)
    assert (layer.weight[~layer.mask] == 0).all()
    assert not isinstance(model.head, MaskedLinear)
    lm_loss(model, steps=2)
    assert (layer.weight[~layer.mask] == 0).all()
    state = model.state_dict()
    assert "blocks.0.up.mask" in state and "blocks.1.attn.qkv.mask" in state
    other = own(width=64, density=0.25, mask_seed=7, seed=3)
    assert not torch.equal(other.blocks[0].up.mask, layer.mask)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    other.load_state_dict(torch.load(buffer))
    assert torch.equal(other.blocks[0].up.mask, layer.mask)
    assert [row.lr for row in hpo.table_of(other).rows] == [
        row.lr for row in hpo.table_of(model).rows
    ]


def test_depth_rules_on_the_blocks_found():
    model = own(width=64, depth=4, base_depth=2, p="supar+completep")
    table = hpo.table_of(model)
    assert table.blocks == ("blocks.0", "blocks.1", "blocks.2", "blocks.3")
    assert (table.depth, table.base_depth) == (4, 2)
    branches = {k for k, (what, v) in table.outputs.items() if what == "residual" and v == 0.5}
    assert branches == {f"blocks.{i}.{m}" for i in range(4) for m in ("attn.out", "down")}
    row = table.hp("blocks.3.down.weight")
    assert row.init_std == pytest.approx(0.02 / math.sqrt(2))  # no 1/√(2L) under depth rules
    assert row.eps == pytest.approx(1e-8 * 0.5)  # ε·m_L^(−α)
    assert table.hp("head.weight").lr == 2**-7  # the tied name answers too


def test_groups_hold_every_lr_and_survive_compile_and_ddp(tmp_path):
    model = own(width=64, density=0.5)
    want = {row.name: (row.lr, row.weight_decay, row.eps) for row in hpo.table_of(model).rows}

    def per_name(groups):
        return {n: (g["lr"], g["weight_decay"], g["eps"]) for g in groups for n in g["names"]}

    assert per_name(hpo.param_groups(model)) == want
    assert per_name(hpo.param_groups(torch.compile(model))) == want
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        assert per_name(hpo.param_groups(nn.parallel.DistributedDataParallel(model))) == want
        from torch.distributed.fsdp import fully_shard

        fully_shard(model)
        assert per_name(hpo.param_groups(model)) == want
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_compiled_model_trains_with_the_same_lrs():
    eager, compiled = own(width=64), torch.compile(own(width=64))
    assert lm_loss(compiled, steps=2) == pytest.approx(lm_loss(eager, steps=2), rel=1e-4)


def test_describe_prints_plan_table(capsys):
    hptransfer.describe(own(width=64, density=0.5))
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("supar: TinyLM width 64, density 0.5, depth 2 (m_d = 2, m_rho = 0.5")
    assert out[1].startswith("forward: embedding × 1, readout × 0.5, attention logits × 0.1768")
    assert out[2].split() == ["name", "role", "shape", "density", "init", "lr", "multiplier"]
    assert out[3].split()[:3] == ["tokens.weight", "embedding", "61×64"]


class Gated(nn.Module):
    """A raw matrix parameter whose layout nobody knows, one axis growing."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, width)
        self.gate = nn.Parameter(torch.ones(width, 3))
        self.head = nn.Linear(width, 10)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(idx) * self.gate.sum(1))


def test_undecidable_roles_are_refused_with_the_override_to_give():
    with pytest.raises(ConfigError, match=r"role of gate \(8×3 → 16×3\).*roles=\{'gate'"):
        hpo.parametrize(Gated(16), base=lambda: Gated(8))
    table = hpo.parametrize(Gated(16), base=lambda: Gated(8), roles={"gat?": "embedding"})
    assert table.hp("gate").role.value == "embedding"


def test_override_by_a_tied_name_and_bad_overrides():
    model = TinyLM(64)
    table = hpo.parametrize(model, base=lambda: TinyLM(32), roles={"head.weight": "readout"})
    assert table.hp("tokens.weight").role.value == "readout"
    with pytest.raises(ConfigError, match=r"unknown role 'hiden'.*did you mean 'hidden'"):
        hpo.parametrize(TinyLM(64), base=lambda: TinyLM(32), roles={"head.weight": "hiden"})
    with pytest.raises(ConfigError, match=r"'nope\.weight' matches no parameter"):
        hpo.parametrize(TinyLM(64), base=lambda: TinyLM(32), roles={"nope.weight": "hidden"})
    with pytest.raises(ConfigError, match="already parametrized"):
        hpo.parametrize(model, base=lambda: TinyLM(32))


def test_base_with_other_parameter_names_is_refused():
    with pytest.raises(ConfigError, match=r"base model has other parameter names.*only there"):
        hpo.parametrize(TinyLM(64), base=lambda: Gated(8))


def test_base_shape_without_delta_is_refused():
    with pytest.raises(ConfigError, match="pass delta="):
        hpo.parametrize(TinyLM(32), base=lambda: TinyLM(32))


class NoHidden(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.embed, self.head = nn.Embedding(10, width), nn.Linear(width, 10)


def test_density_without_hidden_matrices_is_refused_and_model_untouched():
    model = NoHidden(16)
    with pytest.raises(ConfigError, match="no hidden matrices to make sparse"):
        hpo.parametrize(model, base=lambda: NoHidden(8), density=0.5)
    with pytest.raises(ConfigError, match="not parametrized"):
        hpo.table_of(model)


class Attention(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(width, 3 * width)


class Unscaled(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.embed, self.attn = nn.Embedding(10, width), Attention(width)
        self.head = nn.Linear(width, 10)


def test_attention_it_cannot_reach_is_named_in_a_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = hpo.parametrize(Unscaled(16), base=lambda: Unscaled(8))
    assert table.unreached == ("attn",)
    assert any("not applied to attn" in str(w.message) for w in caught)


def test_depth_rules_without_blocks_are_refused():
    with pytest.raises(ConfigError, match="depth rules need residual blocks"):
        hpo.parametrize(NoHidden(16), base=lambda: NoHidden(8), parameterization="mup+completep")


class WithMHA(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, width)
        self.blocks = nn.ModuleList(
            nn.MultiheadAttention(width, 4, batch_first=True) for _ in range(2)
        )
        self.head = nn.Linear(width, 10)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)
        for attn in self.blocks:
            x = x + attn(x, x, x, need_weights=False)[0]
        return self.head(x)


def test_multihead_attention_gets_the_mup_logit_scale():
    model = WithMHA(64)
    table = hpo.parametrize(model, base=lambda: WithMHA(32), parameterization="mup", seed=0)
    assert table.hp("blocks.0.in_proj_weight").role.value == "hidden"
    assert table.hp("blocks.1.out_proj.weight").role.value == "hidden"
    attn = model.blocks[0]
    assert attn.logit_ratio == pytest.approx(math.sqrt(8 / 16))
    assert table.attention["blocks.0"] == pytest.approx(math.sqrt(8) / 16)  # √d₀/d_head
    reference = nn.MultiheadAttention(64, 4, batch_first=True)
    state = {k: v.clone() for k, v in attn.state_dict().items()}
    state["in_proj_weight"][:64] *= attn.logit_ratio
    state["in_proj_bias"][:64] *= attn.logit_ratio
    reference.load_state_dict(state)
    x = torch.randn(2, 5, 64)
    assert torch.allclose(attn(x, x, x)[0], reference(x, x, x)[0], atol=1e-6)
    assert not table.unreached


def test_muon_table_builds_muon_with_adamw_and_keeps_masks():
    """A table resolved for Muon gives MuonAdamW: the hidden matrices in its Muon groups, the
    rest in AdamW's; after steps every masked weight is still exactly zero."""
    model = TinyLM(64)
    hpo.parametrize(
        model, base=lambda: TinyLM(32), parameterization="supar", density=0.25, optimizer="muon"
    )
    optimizer = hpo.build_optimizer(model)
    muon = {n for g in optimizer.param_groups if g.get("optimizer") == "muon" for n in g["names"]}
    assert muon and all(dict(model.named_parameters())[n].ndim == 2 for n in muon)
    tokens = torch.randint(61, (2, 16))
    for _ in range(2):
        model(tokens).logsumexp(-1).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    masked = [m for m in model.modules() if isinstance(m, MaskedLinear) and m.mask is not None]
    assert masked and all(torch.all(m.weight[~m.mask.bool()] == 0) for m in masked)
