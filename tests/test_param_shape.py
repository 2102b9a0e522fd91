"""The base shape's multipliers, head size and hash fields, the HP names and the plan's rows:
the edge cases mutation testing found untested (TESTING.md)."""

import dataclasses

import pytest

from hptransfer.errors import ConfigError
from hptransfer.models import describe
from hptransfer.param import BaseHPs, BaseShape, Multipliers
from tests.conftest import tiny_gpt_run


def test_multipliers_default_to_a_dense_layer() -> None:
    assert BaseShape(width=64).multipliers(128) == Multipliers(width=2.0, density=1.0)
    assert BaseShape(width=64, density=0.5).multipliers(32, 0.25) == Multipliers(0.5, 0.5)


@pytest.mark.parametrize(
    ("width", "heads", "run_heads", "d0"),
    [(128, 4, 16, 32), (128, None, 16, 8), (12, 8, 8, 1), (4, None, 8, 1)],
)
def test_base_head_size_is_a_whole_number_of_at_least_one(width, heads, run_heads, d0) -> None:
    d = BaseShape(width=width, heads=heads).head_dim(run_heads)
    assert d == d0 and isinstance(d, int)


def test_base_shape_hashes_heads_only_when_recorded() -> None:
    assert BaseShape(width=128).to_dict() == {"width": 128, "density": 1.0}
    assert BaseShape(width=128, heads=4).to_dict() == {"width": 128, "density": 1.0, "heads": 4}


def test_hp_names_in_order() -> None:
    names = (
        "lr",
        "init_std",
        "alpha_in",
        "alpha_out",
        "weight_decay",
        "alpha_attn",
        "lr_emb_ratio",
    )
    assert BaseHPs.names() == names


def test_plan_rows_show_the_constant_a_filled_parameter_starts_at() -> None:
    run = tiny_gpt_run(readout_zero_init=True, input_size=32)
    rows = {r.name: r.table_row() for r in describe(run)}
    assert rows["ln_f.weight"]["init"] == 1.0 and rows["head.weight"]["init"] == 0.0
    assert rows["tok_emb.weight"]["init"] == pytest.approx(run.hps.init_std)
    plain = dataclasses.replace(run, model=run.model.replace(readout_zero_init=False))
    assert {r.name: r.table_row() for r in describe(plain)}["head.weight"]["init"] > 0


def test_base_hp_errors_name_the_hp_and_the_bound() -> None:
    with pytest.raises(ConfigError, match=r"hps\.lr must be a finite number; got nan"):
        BaseHPs(lr=float("nan"))
    with pytest.raises(ConfigError, match=r"hps\.init_std must be > 0; got 0"):
        BaseHPs(init_std=0.0)
    with pytest.raises(ConfigError, match=r"^hps\.weight_decay must be >= 0$"):
        BaseHPs(weight_decay=-0.1)
    assert BaseHPs(weight_decay=0.0).weight_decay == 0.0


def _hidden(run, name: str = "blocks.0.attn.qkv.weight"):
    return {r.name: r for r in describe(run)}[name]


@pytest.mark.parametrize("scale", [False, True])
def test_adam_eps_follows_the_hidden_lr_only_when_asked(scale: bool) -> None:
    run = tiny_gpt_run(width=64, input_size=32)  # base width 32: m_d = 2
    run = dataclasses.replace(
        run, parameterization="mup", train=dataclasses.replace(run.train, scale_eps=scale)
    )
    assert _hidden(run).eps == pytest.approx(run.train.eps / (2 if scale else 1))
    assert _hidden(run, "tok_emb.weight").eps == pytest.approx(run.train.eps)


def test_weight_decay_of_one_is_kept_and_made_independent_of_the_lr() -> None:
    run = tiny_gpt_run(width=64, input_size=32)
    run = dataclasses.replace(
        run, parameterization="mup", hps=dataclasses.replace(run.hps, weight_decay=1.0)
    )
    hidden = _hidden(run)
    assert hidden.weight_decay == pytest.approx(2.0) and hidden.lr * hidden.weight_decay == (
        pytest.approx(run.hps.lr * 1.0)
    )


def test_base_shape_errors_name_the_field_and_accept_the_smallest_values() -> None:
    assert BaseShape(width=1, heads=1).head_dim(1) == 1
    for bad, match in [
        ({"width": 0}, r"^base\.width must be >= 1$"),
        ({"width": 64.0}, r"^base\.width must be >= 1$"),
        ({"density": 0.0}, r"^base\.density must be in \(0, 1\]; got 0\.0$"),
        ({"heads": 0}, r"^base\.heads must be a positive integer; got 0$"),
        ({"heads": 2.0}, r"^base\.heads must be a positive integer; got 2\.0$"),
    ]:
        with pytest.raises(ConfigError, match=match):
            BaseShape(**bad)
