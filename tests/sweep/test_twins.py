"""Runs that train the same model are trained once: at the base shape SP, μP and SμPar are one
model, and μP is SP wherever the width is the base width. The twins are stored with the
trained run's results and ``same_as`` naming it; resume and ``--extend`` stay exact."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import tiny_spec

from hptransfer.cli.main import main
from hptransfer.config import RunConfig
from hptransfer.runtime.identity import CONFIG_COLUMNS, point_id, run_key, trial_id
from hptransfer.store import ResultsStore
from hptransfer.sweep import load_spec
from hptransfer.sweep.trials import grid_runs, jobs_for_runs, merge_twins

FAULTKIT = Path(__file__).parents[1] / "faults" / "faultkit.py"


def _variant(run: RunConfig, parameterization: str, density: float = 1.0, **changes) -> RunConfig:
    model = run.model.replace(density=density)
    return dataclasses.replace(run, model=model, parameterization=parameterization, **changes)


def test_run_key_follows_the_trained_model_not_the_request(gpt_run) -> None:
    base = {p: run_key(_variant(gpt_run, p)) for p in ("sp", "mup", "supar")}
    assert len(set(base.values())) == 1  # the base shape: one model
    sparse = {p: run_key(_variant(gpt_run, p, 0.5)) for p in ("sp", "mup", "supar")}
    assert sparse["sp"] == sparse["mup"] != sparse["supar"]  # width = base width: μP is SP
    assert sparse["sp"] != base["sp"]
    assert run_key(_variant(gpt_run, "sp", seed=1)) != base["sp"]
    hps = dataclasses.replace(gpt_run.hps, lr=2**-7)
    assert run_key(_variant(gpt_run, "sp", hps=hps)) != base["sp"]
    wide = gpt_run.retarget(width=64)
    assert run_key(dataclasses.replace(wide, parameterization="sp")) != run_key(wide)


def test_merge_twins_trains_each_model_once(gpt_run) -> None:
    runs = [_variant(gpt_run, p, d) for d in (1.0, 0.5) for p in ("sp", "mup", "supar")]
    jobs = merge_twins(jobs_for_runs(runs))
    assert len(jobs) == 3  # density 1: one model; density 0.5: SP (= μP) and SμPar
    assert sorted(len(job.twins) for job in jobs) == [0, 1, 2]
    ids = [i for job in jobs for i in job.trial_ids]
    assert sorted(ids) == sorted(trial_id(point_id(r), r.seed) for r in runs)


def _attempts(root: Path) -> int:
    log = root / "attempts.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture
def counted(tmp_path, monkeypatch) -> Path:
    """Every training attempt of the Ray workers is logged to ``tmp_path/attempts.log``."""
    spec = importlib.util.spec_from_file_location("faultkit_twins", FAULTKIT)
    faultkit = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("faultkit_twins", faultkit)
    spec.loader.exec_module(faultkit)
    for name, value in faultkit.fault_env(tmp_path, {}).items():
        monkeypatch.setenv(name, value)
    return tmp_path


def test_twins_are_trained_once_and_extend_copies_stored_models(counted, capsys):
    root = counted
    space = {"space": {"lr": {"log2_range": [-7, -6], "step": 1}}}
    spec = tiny_spec(search=space, seeds=[0])
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    args = ["sweep", str(path), "--results", str(root / "results")]
    assert main(args) == 0, capsys.readouterr().err
    assert _attempts(root) == 2
    # the grid grows to three parameterizations and a sparse density: 12 runs planned; at
    # density 1 the stored SμPar models stand for SP and μP (copied, not trained), at 1/2
    # μP is SP: 4 runs to train
    grown = {**spec, "parameterization": ["supar", "sp", "mup"]}
    grown["model"] = {**spec["model"], "density": [1.0, 0.5]}
    path.write_text(yaml.safe_dump(grown))
    assert main([*args, "--extend"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert _attempts(root) == 2 + 4
    assert out.count("same as") == 2 and "(12 runs, 6 trained)" in out
    trials = ResultsStore(root / "results" / "tiny").read_trials().set_index("trial_id")
    planned = {trial_id(point_id(r), r.seed) for r in grid_runs(load_spec(path))}
    assert set(trials.index) == planned
    twins = trials[trials["same_as"] != ""]
    assert len(twins) == 6 and set(twins["same_as"]) <= set(trials.index[trials["same_as"] == ""])
    outcome = [c for c in trials.columns if c not in CONFIG_COLUMNS and c != "same_as"]
    for _, row in twins.iterrows():
        trained = trials.loc[row["same_as"]]
        assert row["run_key"] == trained["run_key"]
        pd.testing.assert_series_equal(row[outcome], trained[outcome], check_names=False)
    curves = ResultsStore(root / "results" / "tiny").read_curves()
    sizes = curves.groupby("trial_id").size()
    assert all(sizes[tid] == sizes[row["same_as"]] for tid, row in twins.iterrows())
    assert main(args) == 0 and _attempts(root) == 6  # resumed: nothing trained again
    # another sweep of the study (μP alone) reuses the models stored in the first: none trained
    other = {**grown, "name": "other", "parameterization": "mup"}
    path.write_text(yaml.safe_dump(other))
    reuse = ["--reuse", str(root / "results" / "tiny")]
    assert main(["sweep", str(path), "--results", str(root / "results"), *reuse]) == 0
    assert _attempts(root) == 6 and "(4 runs, 0 trained)" in capsys.readouterr().out
    copied = ResultsStore(root / "results" / "other").read_trials()
    assert copied["same_as"].str.startswith("tiny/").all()
    assert set(copied["same_as"].str.removeprefix("tiny/")) <= set(trials.index)


def test_reuse_of_a_folder_without_runs_is_one_line(tmp_path, write_spec, capsys):
    path = write_spec(tiny_spec())
    code = main(["sweep", str(path), "--results", str(tmp_path / "r"), "--reuse", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--reuse" in err
    assert not (tmp_path / "r").exists()
