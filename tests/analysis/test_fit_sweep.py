"""Fitting whole synthetic sweep tables: groups, exclusions, joint searches, drift, fit.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from synthetic_sweeps import LR_GRID, make_trials, true_log2_lr, write_sweep

from hptransfer.analysis.fit import (
    FitSettings,
    current_fit,
    fit_optima,
    fit_sweep,
    fit_trials,
    latest_fit,
    load_fit,
    write_fit,
)
from hptransfer.errors import ConfigError, ResultsError
from hptransfer.store import schema as store_schema

FAST = FitSettings(n_boot=300)


def truth(row: pd.Series) -> float:
    return true_log2_lr(row.parameterization, row.width, row.density)


def test_recovers_every_group_within_grid_spacing_despite_diverged_trials() -> None:
    trials = make_trials()
    assert trials["diverged"].any()
    optima = fit_optima(trials, FAST)
    assert len(optima) == 8 and set(optima["flag"]) == {"ok"}
    errors = optima["log2"] - optima.apply(truth, axis=1)
    assert errors.abs().max() < 0.5
    covered = optima["ci95_lo"] <= 2.0 ** optima.apply(truth, axis=1)
    covered &= 2.0 ** optima.apply(truth, axis=1) <= optima["ci95_hi"]
    assert covered.mean() >= 0.75
    assert (optima["n_diverged"] > 0).all() and (optima["n_seeds"] == 3).all()


def test_stopped_short_and_errored_trials_are_excluded() -> None:
    trials = make_trials(parameterizations=("supar",), widths=(64,), densities=(1.0,))
    bad = trials.sample(n=10, random_state=0).index
    trials.loc[bad, "val_loss"] = 0.0  # would be the optimum if used
    trials.loc[bad[:4], ["status", "steps"]] = ["early_stopped", 30]
    trials.loc[bad[4:7], "status"] = "error"
    trials.loc[bad[7:], "steps"] = 50  # completed, but short of the full horizon
    row = fit_optima(trials, FAST).iloc[0]
    assert row.flag == "ok" and abs(row.log2 + 7.3) < 0.5


@pytest.mark.parametrize(("true", "edge"), [(-2.0, LR_GRID[-1]), (-11.5, LR_GRID[0])])
def test_edge_optimum_is_flagged_at_the_edge_point(true: float, edge: float) -> None:
    trials = make_trials(lambda *_: true, widths=(64,), diverge_octaves=9)
    optima = fit_optima(trials, FAST)
    assert set(optima["flag"]) == {"edge"}
    assert np.allclose(optima["value"], edge)


def test_optimum_next_to_diverged_runs_stays_on_the_stable_side() -> None:
    trials = make_trials(lambda *_: -5.0, widths=(64,), diverge_octaves=0.2)
    optima = fit_optima(trials, FAST)
    assert set(optima["flag"]) <= {"ok", "cliff"}
    assert np.allclose(optima["stable_hi"], 2**-5.0) and (optima["n_unstable"] == 4).all()
    assert (optima["log2"] <= -5.0).all() and (optima["log2"] > -5.25).all()


def test_flat_basin_is_flagged() -> None:
    trials = make_trials(widths=(64,), densities=(1.0,), curvature=0.0)
    assert set(fit_optima(trials, FAST)["flag"]) == {"flat"}


def test_joint_search_fits_each_hp_on_its_slice() -> None:
    init_grid = 2.0 ** np.arange(-8, -3.9, 0.5)
    trials = make_trials(
        parameterizations=("supar",), widths=(64,), densities=(1.0,), hps={"init_std": init_grid}
    )
    optima = fit_optima(trials, FAST).set_index("hp")
    assert set(optima["method"]) == {"slice"}
    assert optima.loc["lr", "slice_at"] == {"init_std": pytest.approx(2.0**-6)}
    assert abs(optima.loc["lr", "log2"] + 7.3) < 0.5
    assert abs(optima.loc["init_std", "log2"] + 6.0) < 0.5
    assert optima.loc["init_std", "n_points"] == len(init_grid)


def test_drift_in_octaves_matches_the_known_drift() -> None:
    fit = fit_trials(make_trials(), "demo", {"width": 64}, FAST)
    drift = fit.drift.set_index(["parameterization", "axis"])
    sp_density = drift.loc[("sp", "density"), "octaves"]
    assert list(drift.loc[("sp", "density"), "at"]) == [{"width": 64}, {"width": 128}]
    assert np.allclose(sp_density, 1.0, atol=0.3)  # 0.5 octave per halving, density 1 → 1/4
    assert (drift.loc[("supar", "density"), "octaves"] < 0.3).all()
    assert (drift.loc[("supar", "width"), "octaves"] < 0.3).all()
    assert drift.loc[("sp", "all"), "octaves"] == pytest.approx(sp_density.max(), abs=0.3)
    # The grid arg-mins' drift beside it: whole half-octave steps, the same within one step.
    argmin = drift.loc[("sp", "density"), "argmin_octaves"]
    assert np.allclose(argmin % 0.5, 0) and np.allclose(argmin, sp_density, atol=0.5)
    optima = fit.optima
    assert np.allclose(optima["argmin_log2"] % 0.5, 0)
    assert (abs(optima["log2"] - optima["argmin_log2"]) <= 0.5).all()


def test_base_hps_at_the_base_shape_include_fixed_hps() -> None:
    trials = make_trials().drop(columns=["base_width", "base_density"])
    fit = fit_trials(trials, "demo", None, FAST)
    assert fit.base["width"] == 64 and fit.base["density"] == 1.0
    assert "spec.yaml has no base" in fit.base["source"]
    lr = fit.base_hps["supar"]["lr"]
    assert abs(lr.log2 + 7.3) < 0.5 and lr.ci95[0] < lr.value < lr.ci95[1]
    assert fit.base_hps["supar"]["init_std"].flag == "fixed"
    hps = fit.base_config("supar")
    assert (hps.lr, hps.init_std) == (lr.value, 0.02)
    assert fit.base_shape().width == 64


def test_fit_json_round_trip_is_strict_and_atomic(sweep_dir: Path) -> None:
    fit = fit_sweep(sweep_dir, FAST)
    assert fit.base == {"width": 64, "density": 1.0, "source": "trials.parquet"}
    path = write_fit(fit, sweep_dir)
    doc = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert doc["schema_version"] == 2 and doc["horizon"]["steps"] == 100
    assert doc["provenance"]["torch_version"] and "commit" in doc["provenance"]
    assert set(doc["base_hps"]) == {"sp", "supar"}
    assert sorted(p.name for p in sweep_dir.iterdir() if p.name.startswith(".")) == []
    loaded = load_fit(sweep_dir)
    assert loaded.base_hps == fit.base_hps and loaded.settings == fit.settings
    pd.testing.assert_frame_equal(loaded.optima, fit.optima, check_dtype=False)
    assert latest_fit(sweep_dir.parent) == path


def test_single_seed_gives_null_intervals(tmp_path: Path) -> None:
    fit = fit_trials(make_trials(seeds=(0,), widths=(64,)), "one", None, FAST)
    assert fit.optima["ci95_lo"].isna().all()
    assert fit.base_hps["sp"]["lr"].ci95 is None
    assert load_fit(write_fit(fit, tmp_path)).base_hps == fit.base_hps


def test_all_diverged_and_nothing_searched_are_results_errors() -> None:
    trials = make_trials(widths=(64,))
    with pytest.raises(ResultsError, match="diverged"):
        fit_optima(trials.assign(diverged=True), FAST)
    with pytest.raises(ResultsError, match="no HP varies"):
        fit_optima(trials[trials["lr"] == LR_GRID[3]], FAST)
    with pytest.raises(ConfigError):
        FitSettings(metric="accuracy")


def test_missing_base_shape_and_corrupt_fit_json(tmp_path: Path) -> None:
    trials = make_trials(widths=(64,)).drop(columns=["base_width", "base_density"])
    fit = fit_trials(trials, "x", {"width": 512}, FAST)
    assert fit.base["source"] == "spec.yaml"
    with pytest.raises(ResultsError, match="no optimum for 'sp' at the base shape"):
        fit.base_config("sp")
    (tmp_path / "fit.json").write_text('{"schema_version": 1, "sweep": "x"}')
    with pytest.raises(ResultsError, match=r"not a valid fit\.json"):
        load_fit(tmp_path)
    with pytest.raises(ResultsError, match="not found"):
        load_fit(tmp_path / "nope")


def test_weight_decay_zero_is_skipped_on_the_log_axis() -> None:
    trials = make_trials(parameterizations=("supar",), widths=(64,), densities=(1.0,))
    trials["weight_decay"] = 0.0
    extra = trials.assign(weight_decay=0.1, val_loss=trials["val_loss"] + 0.01)
    optima = fit_optima(pd.concat([trials, extra], ignore_index=True), FAST)
    lr = optima.set_index("hp").loc["lr"]
    assert lr["slice_at"] == {"weight_decay": 0.0} and abs(lr["log2"] + 7.3) < 0.5
    assert optima.set_index("hp").loc["weight_decay", "flag"] == "few_points"


def test_base_shape_from_spec_yaml(tmp_path: Path) -> None:
    trials = make_trials(widths=(64, 128)).drop(columns=["base_width", "base_density"])
    sweep = write_sweep(tmp_path / "s", trials, base={"width": 128, "density": 1.0}, curves=False)
    fit = fit_sweep(sweep, FAST)
    assert fit.base == {"width": 128, "density": 1.0, "source": "spec.yaml"}
    at_base = fit.optima.query("width == 128 and density == 1 and parameterization == 'sp'")
    assert fit.base_hps["sp"]["lr"].value == at_base["value"].item()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("base: [1\n  width: 2\n", r"spec\.yaml is not valid YAML \(line 2, column 8: .+\)$"),
        ("- 1\n", r"spec\.yaml is not a sweep spec \(a YAML mapping\)$"),
    ],
)
def test_a_broken_spec_yaml_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    sweep = write_sweep(tmp_path / "s", make_trials(widths=(64,)), base={"width": 64})
    (sweep / "spec.yaml").write_text(text)
    with pytest.raises(ResultsError, match=message) as raised:
        fit_sweep(sweep, FAST)
    assert "\n" not in str(raised.value)


def test_reads_a_table_in_the_stores_exact_schema(tmp_path: Path) -> None:
    schema = store_schema.TRIALS
    trials = make_trials(widths=(64,))
    full = {n: trials[n] if n in trials else [None] * len(trials) for n in schema.names}
    table = pa.Table.from_pydict({n: list(v) for n, v in full.items()}, schema=schema)
    (tmp_path / "store").mkdir()
    pq.write_table(table, tmp_path / "store" / "trials.parquet")
    fit = fit_sweep(tmp_path / "store", FAST)
    assert set(fit.optima["flag"]) == {"ok"} and fit.horizon["steps"] == 100


def test_fit_at_a_step_of_the_curves_includes_asha_stopped_trials(tmp_path: Path) -> None:
    trials = make_trials(parameterizations=("supar",), widths=(64,), densities=(1.0,))
    far = (np.log2(trials["lr"]) + 7.3).abs() > 1.2  # ASHA stops the trials far from the optimum
    trials.loc[far, ["status", "steps"]] = ["early_stopped", 40]
    sweep = write_sweep(tmp_path / "asha", trials)
    full = fit_sweep(sweep, FAST).optima.iloc[0]
    at_40 = fit_sweep(sweep, FitSettings(n_boot=300, at_step=40))
    row = at_40.optima.iloc[0]
    assert row.n_points > full.n_points and row.flag == "ok" and abs(row.log2 + 7.3) < 0.5
    assert at_40.horizon["steps"] == 40 and at_40.settings.at_step == 40
    with pytest.raises(ResultsError, match="no curve point at step 41; logged steps: 20, 40, 60"):
        fit_sweep(sweep, FitSettings(at_step=41))


def test_current_fit_uses_fit_json_only_while_it_is_up_to_date(sweep_dir: Path) -> None:
    write_fit(fit_sweep(sweep_dir, FAST), sweep_dir)
    fit, saved = current_fit(sweep_dir)
    assert saved and fit.settings == FAST
    trials, fit_json = sweep_dir / "trials.parquet", sweep_dir / "fit.json"
    # Newer than fit.json, however long ago the fixture wrote the trials.
    os.utime(trials, (trials.stat().st_atime, fit_json.stat().st_mtime + 10))
    fit, saved = current_fit(sweep_dir, FAST)
    assert not saved and fit.settings == FAST


def test_a_joint_sweeps_slice_seeds_do_not_flatten_the_other_hps() -> None:
    """Joint grid (seed 0) plus an η slice at the best σ (seeds 0-2): the σ slice is fitted on
    seed 0, the only seed that saw several σ; the extra seeds would make it look flat."""
    sigmas = 2.0 ** np.arange(-8.0, -3.0)
    grid = make_trials(
        parameterizations=("supar",),
        widths=(64,),
        densities=(1.0,),
        seeds=(0,),
        hps={"init_std": sigmas},
    )
    extra = make_trials(
        parameterizations=("supar",),
        widths=(64,),
        densities=(1.0,),
        seeds=(1, 2),
        hps={"init_std": np.array([2.0**-6])},
        seed=1,
    )
    optima = fit_optima(pd.concat([grid, extra], ignore_index=True), FAST).set_index("hp")
    assert optima.loc["lr", "n_seeds"] == 3
    sigma = optima.loc["init_std"]
    assert sigma["n_seeds"] == 1 and sigma["flag"] == "ok"
    assert abs(sigma["log2"] + 6) < 0.5


def test_base_depth_from_spec_yaml_else_the_smallest_of_several(tmp_path: Path) -> None:
    one = make_trials(parameterizations=("supar",), widths=(64,), densities=(1.0,))
    deep = pd.concat(
        [one.assign(depth=2), one.assign(depth=8, val_loss=one["val_loss"] + 1)], ignore_index=True
    )
    sweep = write_sweep(tmp_path / "s", deep, base={"width": 64, "depth": 8}, curves=False)
    fit = fit_sweep(sweep, FAST)
    assert fit.base["depth"] == 8 and fit.base_shape().depth == 8
    at_base = fit.optima.query("depth == 8")
    assert fit.base_hps["supar"]["lr"].value == at_base["value"].item()
    merged = fit_trials(deep, "merged", None, FAST)
    assert merged.base["depth"] == 2 and merged.base_shape().depth == 2
    assert "depth" not in fit_trials(one.assign(depth=2), "flat", None, FAST).base


def extra_hp_trials(hp: str) -> pd.DataFrame:
    """η × ``hp`` at the base, ``hp``'s optimum at 2^1.3 (η's at 2^-7.3, a separable bowl)."""
    grid = 2.0 ** np.arange(-1, 3.1, 0.5)
    trials = make_trials(
        parameterizations=("supar",), widths=(64,), densities=(1.0,), hps={hp: grid}
    )
    x = np.log2(trials[hp])
    shift = 0.05 * ((x - 1.3) ** 2 - (x + 6) ** 2)  # make_trials' extra-HP bowl sits at 2^-6
    return trials.assign(val_loss=trials["val_loss"] + shift)


@pytest.mark.parametrize("hp", ["alpha_attn", "lr_emb_ratio"])
@pytest.mark.parametrize("joint", [True, False])
def test_an_extra_hps_optimum_is_recovered_alone_and_jointly_with_lr(joint: bool, hp: str):
    """α_attn and κ = η_emb/η are fitted like α_out."""
    trials = extra_hp_trials(hp)
    if not joint:
        trials = trials[np.isclose(trials["lr"], 2.0**-7.5)]
    fit = fit_trials(trials, "demo", {"width": 64}, FAST)
    alpha = fit.base_hps["supar"][hp]
    assert abs(alpha.log2 - 1.3) < 0.2 and alpha.flag == "ok"
    assert alpha.ci95[0] < 2.0**1.3 < alpha.ci95[1]
    assert ("supar" in fit.joint) == joint
    if joint:
        assert set(fit.joint["supar"]["hps"]) == {"lr", hp}
        assert abs(fit.base_hps["supar"]["lr"].log2 + 7.3) < 0.2
    assert getattr(fit.base_config("supar"), hp) == alpha.value


def test_a_searched_readout_zero_init_is_fitted_per_value_and_the_better_one_kept() -> None:
    """Zero-initialised readout: the same bowl, 0.02 lower and its optimum half an octave up."""
    off = make_trials(parameterizations=("supar",), widths=(64,), densities=(1.0,))
    on = make_trials(parameterizations=("supar",), widths=(64,), densities=(1.0,), seed=1)
    x = np.log2(on["lr"])
    on = on.assign(val_loss=on["val_loss"] - 0.02 + 0.05 * ((x + 6.8) ** 2 - (x + 7.3) ** 2))
    trials = pd.concat(
        [off.assign(readout_zero_init=False), on.assign(readout_zero_init=True)],
        ignore_index=True,
    )
    fit = fit_trials(trials, "demo", {"width": 64}, FAST)
    assert "readout_zero_init" in fit.group_axes
    assert fit.base_settings == {"supar": {"readout_zero_init": True}}
    by_value = fit.optima.set_index("readout_zero_init")["log2"]
    assert abs(by_value[True] + 6.8) < 0.2 and abs(by_value[False] + 7.3) < 0.2
    assert abs(fit.base_hps["supar"]["lr"].log2 + 6.8) < 0.2
    again = fit_trials(trials[~trials["readout_zero_init"]], "demo", {"width": 64}, FAST)
    assert "readout_zero_init" not in again.group_axes
    assert again.base_settings == {"supar": {"readout_zero_init": False}}
