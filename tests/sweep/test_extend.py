"""Auto-extension: a grid grows past its edge optima until the fit locates them.

The runner is a stand-in for Ray: it "trains" every planned run of the spec (the real grid
plan, and the slice's) with a known loss, so the loop, the widened specs, the messages and
the final fit are the real ones.
"""

from __future__ import annotations

import argparse
import io
import itertools
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_spec

from hptransfer.analysis.fit import FitSettings, fit_optima
from hptransfer.errors import ConfigError
from hptransfer.runtime.identity import point_id, trial_id
from hptransfer.store import HP_COLUMNS
from hptransfer.sweep import SweepSpec, load_spec, parse_spec
from hptransfer.sweep.command import extend_rounds
from hptransfer.sweep.extend import MAX_ROUNDS, auto_extend, covering, edge_sides, extended
from hptransfer.sweep.trials import grid_runs, slice_runs, slice_variant_ids

SPEC = tiny_spec(
    parameterization=["sp", "supar"],
    search={"space": {"lr": {"log2_range": [-8, -6], "step": 0.5}}},
    seeds=[0, 1, 2],
)
# The default proxy's shape of search: lr × init_std × alpha_out, then a 3-seed lr slice.
JOINT = tiny_spec(
    search={
        "space": {
            "lr": {"log2_range": [-9, -5], "step": 1},
            "init_std": {"values": [0.02, 0.04, 0.08, 0.16]},
            "alpha_out": {"log2_range": [0, 2], "step": 1},
        },
        "slice": {"hp": "lr", "octaves": 1, "step": 0.5, "seeds": [0, 1, 2]},
    },
    seeds=[0],
)


def synthetic_runner(true: float | dict[str, float], calls: list[SweepSpec], diverge=None):
    """A runner whose loss is a parabola in the log2 of each HP of ``true`` (an lr optimum
    alone if a number), with its minimum there; ``diverge(run)`` marks runs that diverge."""
    true = {"lr": true} if isinstance(true, float) else true
    rng = np.random.default_rng(0)

    def train(runs) -> list[dict]:
        rows = []
        for r in runs:
            bowl = sum(0.05 * (_log2(getattr(r.hps, hp)) - x) ** 2 for hp, x in true.items())
            failed = bool(diverge and diverge(r))
            loss = math.nan if failed else 2.1 + bowl + rng.normal(0, 0.002)
            rows.append(_row(r, loss, failed))
        return rows

    def run(spec: SweepSpec) -> pd.DataFrame:
        calls.append(spec)
        grid = pd.DataFrame(train(grid_runs(spec)))
        planned = (r for c in spec.cells for r in slice_runs(spec, c, grid))
        sliced = {trial_id(point_id(r), r.seed): r for r in planned}
        new = [r for key, r in sliced.items() if key not in set(grid["trial_id"])]
        return pd.concat([grid, pd.DataFrame(train(new))], ignore_index=True)

    return run


def grid_optima(trials: pd.DataFrame) -> pd.DataFrame:
    """What the CLI hands auto-extension: the fit's optima, one bootstrap draw."""
    return fit_optima(trials, FitSettings(n_boot=1))


def _log2(value: float) -> float:
    return math.log2(value) if value > 0 else -30.0  # weight decay 0: far from any optimum


def _row(run, loss: float, diverged: bool) -> dict:
    return {
        "trial_id": trial_id(point_id(run), run.seed),
        "parameterization": run.parameterization,
        "model": run.model.kind,
        "depth": run.model.depth,
        "width": run.model.width,
        "density": run.model.density,
        "seed": run.seed,
        **{hp: getattr(run.hps, hp) for hp in HP_COLUMNS},
        "max_steps": run.train.steps,
        "steps": run.train.steps,
        "val_loss": loss,
        "train_loss": 10.0 if diverged else loss,
        "diverged": diverged,
        "status": "completed",
    }


@pytest.mark.parametrize("true", [-4.8, -9.3])
def test_edge_optimum_is_grown_into_and_recovered_within_half_a_step(true: float) -> None:
    calls: list[SweepSpec] = []
    out = io.StringIO()
    spec, trials = auto_extend(parse_spec(SPEC), synthetic_runner(true, calls), grid_optima, out)
    optima = fit_optima(trials, FitSettings(n_boot=200))
    assert set(optima["flag"]) == {"ok"}
    assert (abs(optima["log2"] - true) < 0.25).all()
    lo, hi = spec.search.space[0].log2_range
    assert lo <= true <= hi and len(calls) > 1
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("auto-extend round 1/4: optimum on the grid's edge; added lr")
    assert lines[-1].startswith(f"auto-extend: after {len(calls) - 1} round")
    assert "every optimum inside the grid" in lines[-1]
    # Every earlier value is kept bit for bit (so stored runs keep their trial ids).
    for before, after in itertools.pairwise(calls):
        assert set(before.search.space[0].values) < set(after.search.space[0].values)


def test_interior_optimum_runs_once() -> None:
    calls: list[SweepSpec] = []
    out = io.StringIO()
    spec, _ = auto_extend(parse_spec(SPEC), synthetic_runner(-7.1, calls), grid_optima, out)
    assert len(calls) == 1 and spec.hash == parse_spec(SPEC).hash and out.getvalue() == ""


def test_extension_is_bounded_and_says_so() -> None:
    calls: list[SweepSpec] = []
    out = io.StringIO()
    spec, _ = auto_extend(
        parse_spec(SPEC), synthetic_runner(0.0, calls), grid_optima, out, max_rounds=3
    )
    assert len(calls) == 3 + 1
    assert spec.search.space[0].log2_range == (-8, -6 + 0.5 * 3)
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == [
        f"auto-extend round {k}/3" for k in (1, 2, 3)
    ]
    assert lines[3].startswith(
        "auto-extend: after 3 rounds, stopped: optima still on the edge: lr (high)"
    )
    assert len(lines) == 4


def test_values_and_log2_hps_of_a_joint_grid_grow_past_their_edges() -> None:
    """The issue's case: on other data the best init_std is the grid's lowest and the best
    alpha_out its highest; both grow (a values list by its outermost ratio) until inside."""
    calls: list[SweepSpec] = []
    out = io.StringIO()
    true = {"lr": -7.2, "init_std": -6.6, "alpha_out": 2.7}  # σ 0.0103, α_out 6.5
    spec, trials = auto_extend(parse_spec(JOINT), synthetic_runner(true, calls), grid_optima, out)
    space = {hp.name: hp for hp in spec.search.space}
    assert space["init_std"].values == (0.005, 0.01, 0.02, 0.04, 0.08, 0.16)
    assert space["alpha_out"].log2_range == (0, 4) and len(calls) == 3
    assert space["lr"].log2_range == (-9, -5)  # inside from the start: never grown
    first = out.getvalue().splitlines()[0]
    assert re.fullmatch(
        r"auto-extend round 1/4: optimum on the grid's edge; added init_std \(low end\) 0\.01; "
        r"alpha_out \(high end\) 2\^3; now lr 2\^-9\.\.2\^-5, init_std 0\.01\.\.0\.16, "
        r"alpha_out 2\^0\.\.2\^3",
        first,
    ), first
    assert "every optimum inside the grid" in out.getvalue().splitlines()[-1]
    assert edge_sides(spec, grid_optima(trials)) == {}


def test_a_values_list_with_zero_grows_between_zero_and_its_lowest_positive_value() -> None:
    """The fit works in log2 and leaves weight decay 0 out: the low end is the lowest
    positive value, and the value added halves it (the list's outermost ratio)."""
    space = {"lr": {"log2_range": [-8, -6], "step": 0.5}, "weight_decay": {"values": [0, 0.1, 0.2]}}
    calls: list[SweepSpec] = []
    out = io.StringIO()
    runner = synthetic_runner({"lr": -7.0, "weight_decay": math.log2(0.05)}, calls)
    spec, _ = auto_extend(
        parse_spec(tiny_spec(search={"space": space}, seeds=[0, 1, 2])), runner, grid_optima, out
    )
    assert spec.search.space[1].values == (0.0, 0.025, 0.05, 0.1, 0.2) and len(calls) == 3
    assert "added weight_decay (low end) 0.05;" in out.getvalue()


def test_an_end_where_every_run_diverged_is_named() -> None:
    calls: list[SweepSpec] = []
    out = io.StringIO()
    runner = synthetic_runner(-5.9, calls, diverge=lambda run: run.hps.lr > 2**-5.75)
    spec, _ = auto_extend(parse_spec(SPEC), runner, grid_optima, out)
    assert spec.search.space[0].log2_range == (-8, -5.5) and len(calls) == 2
    assert out.getvalue().splitlines()[-1] == (
        "auto-extend: after 1 round, every optimum inside the grid; every run at lr 2^-5.5 "
        "(high end) diverged (lr 2^-8..2^-5.5)"
    )


def test_a_rerun_covers_a_grown_values_list() -> None:
    spec = parse_spec(JOINT)
    stored = extended(spec, {"init_std": {"low"}}).to_yaml()
    assert covering(spec, stored).search.space[1].values == (0.01, 0.02, 0.04, 0.08, 0.16)
    space = {**JOINT["search"]["space"], "init_std": {"values": [0.03, 0.06, 0.12]}}
    other = parse_spec(tiny_spec(search={"space": space}))
    assert covering(other, stored).search.space[1].values == (0.03, 0.06, 0.12)  # not a subset


def test_slice_runs_at_an_earlier_best_point_stay_planned_after_growing() -> None:
    """``--extend`` (which auto-extension uses) refuses stored runs the grown spec does not
    plan: the slice's runs at the old best point must count as planned."""
    spec = parse_spec(JOINT)
    trials = synthetic_runner({"lr": -7.2, "init_std": -6.6}, [])(spec)
    grid = {trial_id(point_id(run), run.seed) for run in grid_runs(spec)}
    sliced = set(trials["trial_id"]) - grid
    assert len(sliced) == 12  # 5 half-octave lr values × 3 seeds, less the 3 grid repeats
    grown = extended(spec, {"init_std": {"low"}})
    assert sliced <= slice_variant_ids(grown, trials)
    assert not sliced & {trial_id(point_id(run), run.seed) for run in grid_runs(grown)}


def test_auto_extend_is_a_spec_key_that_the_cli_can_override(monkeypatch) -> None:
    on = parse_spec({**JOINT, "search": {**JOINT["search"], "auto_extend": 2}})
    off = parse_spec(JOINT)
    assert on.hash == off.hash  # how far to look, not what a run computes
    assert (
        on.to_dict()["search"]["auto_extend"] == 2 and "auto_extend" not in off.to_dict()["search"]
    )
    assert [extend_rounds(on, flag) for flag in (None, True, False)] == [2, 2, 0]
    assert [extend_rounds(off, flag) for flag in (None, True, False)] == [
        0,
        MAX_ROUNDS,
        0,
    ]
    assert load_spec(Path(__file__).parents[2] / "sweeps" / "proxy.yaml").search.auto_extend == 4
    for bad, message in [(-1, "must be in"), (17, "must be in"), ("x", "")]:
        with pytest.raises(ConfigError, match=f"search.auto_extend.*{message}"):
            parse_spec({**JOINT, "search": {**JOINT["search"], "auto_extend": bad}})
    optuna = {"algorithm": "optuna", "space": {"lr": {"low": 1e-3, "high": 1e-2}}, "auto_extend": 1}
    with pytest.raises(ConfigError, match=r"search\.auto_extend: grows a grid"):
        parse_spec(tiny_spec(search=optuna))


@pytest.mark.parametrize("flag", [None, "--no-auto-extend"])
def test_the_sweep_command_grows_the_grid_by_default_and_not_when_turned_off(
    monkeypatch, capsys, write_spec, tmp_path, flag
) -> None:
    """The CLI path (Ray replaced by the synthetic runner): the spec's auto_extend runs the
    rounds and prints them; --no-auto-extend runs the written grid once, silently."""
    calls: list[SweepSpec] = []
    runner = synthetic_runner(-4.8, calls)

    def fake_run_sweep(spec, results, **kwargs):
        trials = runner(spec)
        return argparse.Namespace(
            trials=trials, directory=tmp_path, failed=0, finished=len(trials),
            expected=len(trials), trained=len(trials),
        )  # fmt: skip

    monkeypatch.setattr("hptransfer.sweep.command.run_sweep", fake_run_sweep)
    path = write_spec({**SPEC, "search": {**SPEC["search"], "auto_extend": 2}})
    args = ["sweep", str(path), "--results", str(tmp_path / "r"), *([flag] if flag else [])]
    from hptransfer.cli.main import main

    assert main(args) == 0
    out = capsys.readouterr().out
    if flag is None:
        assert len(calls) == 3 and out.count("auto-extend round") == 2
        assert "after 2 rounds, stopped: optima still on the edge: lr (high)" in out
    else:
        assert len(calls) == 1 and "auto-extend" not in out


SINGLE_SEED_MEASUREMENTS = ("horizon_1350.yaml",)


@pytest.mark.parametrize(
    "path", sorted(Path(__file__).parents[2].joinpath("sweeps").glob("*.yaml")), ids=str
)
def test_committed_grid_studies_ask_for_at_least_3_seeds(path: Path) -> None:
    """2 seeds give 3 distinct bootstrap resamples: intervals then say little. (Optuna with ASHA
    needs one seed; the proxy's fitted LR comes from its 3-seed slice.) Exception, said in its spec
    and in results/horizon_fit/README.md: the held-back long horizon of the horizon study, one seed
    for lack of CPU time, which no fit of γ uses."""
    spec = load_spec(path)
    if spec.search.algorithm == "grid" and path.name not in SINGLE_SEED_MEASUREMENTS:
        fitted_seeds = spec.search.slice.seeds if spec.search.slice else spec.seeds
        assert len(fitted_seeds or spec.seeds) >= 3
