"""hptransfer merge: several sweeps' runs in one study folder that fit and plot read."""

from __future__ import annotations

import json
from math import log2

import pytest
from test_store_parquet import curve, trial

from hptransfer.analysis.fit import fit_sweep
from hptransfer.cli.main import main
from hptransfer.store import ResultsStore
from hptransfer.store.merge import merge_sweeps


def sweep(path, rows: list[dict]) -> None:
    store = ResultsStore(path)
    with store.lock():
        store.append(rows, [p for row in rows for p in curve(row["trial_id"])])


def lr_row(trial_id: str, parameterization: str, lr: float, seed: int, **extra) -> dict:
    # a parabola in log2(lr) with its minimum at 2^-7 for SP and 2^-8 for SμPar
    best = -7.0 if parameterization == "sp" else -8.0
    loss = 2.0 + 0.05 * (log2(lr) - best) ** 2 + 0.001 * seed
    row = trial(trial_id, val_loss=loss)
    row.update({"parameterization": parameterization, "lr": lr, "seed": seed, "density": 0.25})
    row.update(extra)
    return row


def two_sweeps(tmp_path) -> tuple:
    lrs = [2.0**e for e in range(-10, -4)]
    a = [lr_row(f"sp{i}-s{s}", "sp", lr, s) for i, lr in enumerate(lrs) for s in (0, 1)]
    b = [lr_row(f"su{i}-s{s}", "supar", lr, s) for i, lr in enumerate(lrs) for s in (0, 1)]
    sweep(tmp_path / "a", a)
    sweep(tmp_path / "b", b + a[:2])  # two runs also stored by the first sweep
    return tmp_path / "a", tmp_path / "b"


def test_union_of_runs_and_curves_fits_per_parameterization(tmp_path):
    a, b = two_sweeps(tmp_path)
    outcome = merge_sweeps([a, b], tmp_path / "study")
    assert outcome.runs == 24 and outcome.taken == {str(a): 12, str(b): 12}
    study = ResultsStore(tmp_path / "study")
    assert store_ids(study) == store_ids(ResultsStore(a)) | store_ids(ResultsStore(b))
    curves = study.read_curves()
    assert len(curves) == 2 * 24 and not curves.duplicated(["trial_id", "step"]).any()
    doc = json.loads((tmp_path / "study" / "sources.json").read_text())
    assert doc["sources"] == [str(a), str(b)]
    optima = fit_sweep(tmp_path / "study").optima.set_index("parameterization")["log2"]
    assert optima["sp"] == pytest.approx(-7, abs=0.1)
    assert optima["supar"] == pytest.approx(-8, abs=0.1)


def store_ids(store: ResultsStore) -> set[str]:
    return set(store.read_trials()["trial_id"])


def test_merging_again_replaces_the_earlier_merge(tmp_path):
    a, b = two_sweeps(tmp_path)
    merge_sweeps([a, b], tmp_path / "study")
    merge_sweeps([a], tmp_path / "study")
    assert store_ids(ResultsStore(tmp_path / "study")) == store_ids(ResultsStore(a))


@pytest.mark.parametrize(
    "problem, words",
    [
        ("horizon", ["differ in max_steps", "10, 20"]),
        ("base", ["differ in base_width"]),
        ("missing", ["trials.parquet not found"]),
        ("sweep target", ["is a sweep's folder"]),
        ("self", ["is also a source"]),
    ],
)
def test_bad_merges_are_one_line_errors_and_write_nothing(tmp_path, capsys, problem, words):
    a, b = two_sweeps(tmp_path)
    into = tmp_path / "study"
    if problem == "horizon":
        sweep(b, [lr_row("x-s0", "mup", 0.01, 0, max_steps=20)])
    if problem == "base":
        sweep(b, [lr_row("x-s0", "mup", 0.01, 0, base_width=32)])
    if problem == "missing":
        b = tmp_path / "nowhere"
    if problem == "sweep target":
        into.mkdir()
        (into / "spec.yaml").write_text("name: study\n")
    if problem == "self":
        into = a
    before = (a / "trials.parquet").read_bytes()
    code = main(["merge", str(a), str(b), "--into", str(into)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("hptransfer: error:")
    assert all(word in err for word in words), err
    assert not (into / "trials.parquet").exists() or into == a
    assert (a / "trials.parquet").read_bytes() == before


def test_only_selects_runs_by_column_values(tmp_path):
    a, b = two_sweeps(tmp_path)
    into = str(tmp_path / "s")
    only = ["--only", "parameterization=supar", "--only", "density=1/4"]
    assert main(["merge", str(a), str(b), "--into", into, *only]) == 0
    trials = ResultsStore(tmp_path / "s").read_trials()
    assert set(trials["parameterization"]) == {"supar"} and len(trials) == 12
    doc = json.loads((tmp_path / "s" / "sources.json").read_text())
    assert doc["only"] == "parameterization=supar density=0.25"


@pytest.mark.parametrize(
    "only, words",
    [
        ("lr=0.1", ["bad --only 'lr=0.1'", "density=1,1/8"]),
        ("width:density=16", ["bad --only value"]),
        ("density=half", ["bad --only value"]),
        ("width=", ["bad --only 'width='"]),
        ("density=1/2", ["no stored run matches --only density=0.5"]),
    ],
)
def test_bad_only_is_a_one_line_error(tmp_path, capsys, only, words):
    a, b = two_sweeps(tmp_path)
    code = main(["merge", str(a), str(b), "--into", str(tmp_path / "s"), "--only", only])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and all(w in err for w in words), err
    assert not (tmp_path / "s" / "trials.parquet").exists()


def test_only_joint_values_select_shapes(tmp_path):
    a, b = two_sweeps(tmp_path)
    sweep(b, [lr_row("w32-s0", "supar", 0.01, 0, width=32, density=0.0625)])
    into = str(tmp_path / "s")
    assert main(["merge", str(a), str(b), "--into", into, "--only", "width:density=32:1/16"]) == 0
    assert store_ids(ResultsStore(into)) == {"w32-s0"}
    doc = json.loads((tmp_path / "s" / "sources.json").read_text())
    assert doc["only"] == "width:density=32:0.0625"
