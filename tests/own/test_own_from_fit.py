"""hptransfer.own.from_fit: a fitted proxy sweep's base HPs on your own model at a target's
shape and budget, for a loop that runs elsewhere."""

import pytest
import torch

import hptransfer.own as hpo
from hptransfer.analysis.fit import load_fit
from hptransfer.errors import ConfigError, ResultsError
from tests.own.models import TinyLM
from tests.transfer.fitted_sweep import write_sweep


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return write_sweep(tmp_path_factory.mktemp("fitted") / "results")


def test_groups_and_schedule_at_the_targets_shape_and_budget(sweep):
    fitted = load_fit(sweep).base_config("supar")
    model = TinyLM(64)
    recipe = hpo.from_fit(model, sweep, base=lambda: TinyLM(16), density=0.5, steps=40)
    assert recipe.table.parameterization == "supar"
    assert recipe.table.hps.lr == pytest.approx(fitted.lr / 2)  # completedp: √(1/m_D), m_D 4
    hidden = recipe.table.hp("blocks.0.up.weight")
    assert hidden.lr == pytest.approx(fitted.lr / 2 / (4 * 0.5))  # η / (m_d·m_rho)
    assert recipe.train.steps == 40 and recipe.train.warmup_steps == 8  # warmup's fraction
    assert recipe.lr_factor(0) == pytest.approx(1 / 8)
    names = {n for g in recipe.groups for n in g["names"]}
    assert names == {row.name for row in recipe.table.rows}
    optimizer = recipe.optimizer(model)
    scheduler = recipe.scheduler(optimizer)
    lrs = {n: g["lr"] for g in optimizer.param_groups for n in g["names"]}
    assert lrs["blocks.0.up.weight"] == pytest.approx(hidden.lr / 8)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(recipe.groups[0]["lr"] * 2 / 8)
    assert isinstance(optimizer, torch.optim.AdamW)


def test_the_proxys_budget_keeps_the_fitted_hps(sweep):
    recipe = hpo.from_fit(TinyLM(32), sweep, base=lambda: TinyLM(16))
    assert recipe.table.hps == load_fit(sweep).base_config("supar")
    assert recipe.train.steps == 10 and recipe.batch_size == 4


def test_a_base_at_another_width_or_a_missing_fit_is_refused(sweep, tmp_path):
    model = TinyLM(64)
    with pytest.raises(ConfigError, match=r"base build has width 32.*fitted at width 16"):
        hpo.from_fit(model, sweep, base=lambda: TinyLM(32))
    hpo.from_fit(model, sweep, base=lambda: TinyLM(16))  # the model was left untouched
    with pytest.raises(ResultsError, match="no sweep results"):
        hpo.from_fit(TinyLM(64), tmp_path, base=lambda: TinyLM(16))
