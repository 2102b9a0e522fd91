"""Versioned results files: the current format as a fixture, an older one migrated on read,
and a newer one refused in one line with nothing changed."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from hptransfer.analysis.fit import SCHEMA_VERSION as FIT_VERSION
from hptransfer.analysis.fit import load_fit
from hptransfer.analysis.results import read_trials
from hptransfer.cli.main import main
from hptransfer.provenance import FIELDS
from hptransfer.store import CURVES, TRIALS, ResultsStore
from hptransfer.store.schema import SCHEMA_VERSION, VERSION_KEY, table_version
from hptransfer.sweep import load_spec
from hptransfer.sweep.spec import SPEC_VERSION

FIXTURES = Path(__file__).parents[1] / "fixtures" / "results"
CURRENT = FIXTURES / f"v{SCHEMA_VERSION}" / "tiny"
LEGACY = FIXTURES / "v1" / "supar_width256"
VERSION_2 = FIXTURES / "v2" / "tiny"
VERSION_3 = FIXTURES / "v3" / "tiny"
VERSION_4 = FIXTURES / "v4" / "tiny"


def _written_now(tmp_path: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).parents[1] / "transfer"))
    from fitted_sweep import write_sweep

    return write_sweep(tmp_path / "results")


def test_the_fixture_is_the_format_the_code_writes(tmp_path: Path) -> None:
    fresh = _written_now(tmp_path)
    for name, schema in (("trials.parquet", TRIALS), ("curves.parquet", CURVES)):
        stored = pq.read_schema(CURRENT / name)
        assert stored.equals(schema) and table_version(stored) == SCHEMA_VERSION
        assert pq.read_schema(fresh / name).equals(stored, check_metadata=True)
    fit = json.loads((CURRENT / "fit.json").read_text())
    assert fit["schema_version"] == FIT_VERSION
    assert set(fit) == set(json.loads((fresh / "fit.json").read_text()))
    spec = yaml.safe_load((CURRENT / "spec.yaml").read_text())
    assert spec == yaml.safe_load((fresh / "spec.yaml").read_text())
    assert spec["schema_version"] == SPEC_VERSION
    # and it reads back through every reader
    assert len(ResultsStore(CURRENT).read_trials()) == len(read_trials(CURRENT)) == 28
    assert load_fit(CURRENT).provenance["torch_version"]
    assert load_spec(CURRENT / "spec.yaml").hash in set(read_trials(CURRENT)["spec_hash"])


def test_version_1_is_migrated_in_memory(tmp_path: Path) -> None:
    assert table_version(pq.read_schema(LEGACY / "trials.parquet")) == 1
    trials = ResultsStore(LEGACY).read_trials()
    assert list(trials.columns) == TRIALS.names and len(trials) == 20
    assert trials[[*FIELDS, "val_loss_se"]].isna().all().all()
    assert trials["val_loss"].notna().all()
    fit = load_fit(LEGACY)
    assert fit.provenance == {} and fit.base_hps
    spec = load_spec(LEGACY / "spec.yaml")
    assert spec.model.mask_seed == 0 and spec.hash in set(trials["spec_hash"])
    # adding runs rewrites the table in the current version, old rows kept
    folder = shutil.copytree(LEGACY, tmp_path / "legacy")
    store = ResultsStore(folder)
    first = pa.Table.from_pandas(trials.head(1), preserve_index=False).to_pylist()[0]
    row = {**first, "trial_id": "new-s0", "torch_version": "x"}
    with store.lock():
        store.append([row], [])
    assert table_version(pq.read_schema(folder / "trials.parquet")) == SCHEMA_VERSION
    assert len(store.read_trials()) == 21


def test_version_2_reads_without_run_keys_or_twins() -> None:
    assert table_version(pq.read_schema(VERSION_2 / "trials.parquet")) == 2
    trials = ResultsStore(VERSION_2).read_trials()
    assert list(trials.columns) == TRIALS.names and len(trials) == 28
    assert trials[["run_key", "same_as"]].isna().all().all()
    current = ResultsStore(CURRENT).read_trials()
    assert trials["trial_id"].tolist() == current["trial_id"].tolist()
    assert (current["same_as"] == "").all() and current["run_key"].str.len().eq(16).all()
    assert len(read_trials(VERSION_2)) == 28 and load_fit(VERSION_2).base_hps


def test_version_3_reads_with_alpha_attn_1_and_keeps_its_keys() -> None:
    """A table from before the attention multiplier: α_attn 1 (and no zero-initialised
    readout) in every reader, and the runs
    its spec plans today have the trial ids and run keys it stored."""
    from hptransfer.runtime.identity import point_id, run_key, trial_id
    from hptransfer.sweep.trials import grid_runs

    assert table_version(pq.read_schema(VERSION_3 / "trials.parquet")) == 3
    assert "alpha_attn" not in pq.read_schema(VERSION_3 / "trials.parquet").names
    for trials in (ResultsStore(VERSION_3).read_trials(), read_trials(VERSION_3)):
        assert len(trials) == 28 and trials["alpha_attn"].eq(1.0).all()
        assert not trials["readout_zero_init"].astype(bool).any()
    assert load_fit(VERSION_3).base_config("supar").alpha_attn == 1.0
    stored = ResultsStore(VERSION_3).read_trials().set_index("trial_id")["run_key"]
    runs = grid_runs(load_spec(VERSION_3 / "spec.yaml"))
    planned = {trial_id(point_id(r), r.seed): run_key(r) for r in runs}
    assert planned == stored.to_dict()


def test_version_4_reads_with_kappa_1_and_keeps_its_keys() -> None:
    """A table from before κ = η_emb/η: κ 1 in every reader, fit.json without it reads as 1,
    and the runs its spec plans today have the trial ids and run keys it stored."""
    from hptransfer.runtime.identity import point_id, run_key, trial_id
    from hptransfer.sweep.trials import grid_runs

    assert table_version(pq.read_schema(VERSION_4 / "trials.parquet")) == 4
    assert "lr_emb_ratio" not in pq.read_schema(VERSION_4 / "trials.parquet").names
    for trials in (ResultsStore(VERSION_4).read_trials(), read_trials(VERSION_4)):
        assert len(trials) == 28 and trials["lr_emb_ratio"].eq(1.0).all()
    assert load_fit(VERSION_4).base_config("supar").lr_emb_ratio == 1.0
    stored = ResultsStore(VERSION_4).read_trials().set_index("trial_id")["run_key"]
    runs = grid_runs(load_spec(VERSION_4 / "spec.yaml"))
    planned = {trial_id(point_id(r), r.seed): run_key(r) for r in runs}
    assert planned == stored.to_dict()


def test_spec_version_1_fixes_the_mask_when_mask_seed_is_absent() -> None:
    from hptransfer.sweep import parse_spec

    raw = yaml.safe_load((CURRENT / "spec.yaml").read_text())
    del raw["model"]["mask_seed"]
    assert parse_spec(raw).model.mask_seed is None
    assert parse_spec({**raw, "schema_version": 1}).model.mask_seed == 0


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def _future_table(path: Path) -> None:
    table = pq.read_table(path)
    meta = {**table.schema.metadata, VERSION_KEY: b"99"}
    pq.write_table(table.replace_schema_metadata(meta), path)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    return shutil.copytree(CURRENT, tmp_path / "results" / "tiny")


def _snapshot(folder: Path) -> dict[str, bytes]:
    files = (p for p in sorted(folder.iterdir()) if p.is_file() and p.name != "sweep.lock")
    return {p.name: p.read_bytes() for p in files}


@pytest.mark.parametrize("name", ["trials.parquet", "curves.parquet"])
def test_a_table_from_a_future_version_is_refused_in_one_line(copy: Path, capsys, name) -> None:
    _future_table(copy / name)
    before = _snapshot(copy)
    commands = [["plot", str(copy)]] + ([["fit", str(copy)]] if name == "trials.parquet" else [])
    for argv in commands:  # (fit reads only trials.parquet)
        code, err = _run(capsys, *argv)
        assert code == 2 and err.count("\n") == 1, err
        assert "results format version 99" in err and "upgrade hptransfer" in err
    with pytest.raises(Exception, match="version 99"):
        ResultsStore(copy).append([], [])
    assert _snapshot(copy) == before


def test_a_fit_json_from_a_future_version_is_refused_and_kept(copy: Path, capsys) -> None:
    doc = json.loads((copy / "fit.json").read_text())
    (copy / "fit.json").write_text(json.dumps({**doc, "schema_version": 99}))
    before = _snapshot(copy)
    for argv in (
        ["fit", str(copy)],  # would replace it
        ["transfer", "--from", str(copy), "--to", "width=32", "--dry-run"],
    ):
        code, err = _run(capsys, *argv)
        assert code == 2 and err.count("\n") == 1, err
        assert "schema_version 99" in err and "upgrade hptransfer" in err
    assert _snapshot(copy) == before


def test_a_spec_from_a_future_version_is_refused_before_anything_runs(copy: Path, capsys) -> None:
    spec = yaml.safe_load((copy / "spec.yaml").read_text())
    (copy / "spec.yaml").write_text(yaml.safe_dump({**spec, "schema_version": 99}))
    sweep_file = copy.parent.parent / "tiny.yaml"
    sweep_file.write_text(yaml.safe_dump({k: v for k, v in spec.items() if k != "schema_version"}))
    before = _snapshot(copy)
    code, err = _run(capsys, "sweep", str(sweep_file), "--results", str(copy.parent))
    assert code == 2 and err.count("\n") == 1, err
    assert "schema_version 99" in err and "upgrade hptransfer" in err
    assert _snapshot(copy) == before


def test_unexpected_columns_in_an_old_table_are_refused(tmp_path: Path) -> None:
    table = pa.table({"trial_id": ["a"], "surprise": [1]})
    pq.write_table(table, tmp_path / "trials.parquet")
    with pytest.raises(Exception, match="unexpected columns"):
        ResultsStore(tmp_path).read_trials()
