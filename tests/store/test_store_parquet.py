"""The Parquet store: flat plain-typed tables, upserts by trial_id, atomic replacement, an
append that writes only its own rows (part files), compaction that a crash cannot spoil."""

from __future__ import annotations

import math

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hptransfer.errors import ResultsError
from hptransfer.store import CURVES, TRIALS, ResultsStore
from hptransfer.store import io as store_io


def trial(trial_id: str, val_loss: float = 2.0, status: str = "completed") -> dict:
    row = {name: None for name in TRIALS.names}
    row.update(
        trial_id=trial_id, point_id=trial_id.split("-s")[0], sweep="s", spec_hash="h",
        parameterization="supar", model="gpt", width=16, depth=1, heads=2, density=0.5,
        base_width=16, base_density=1.0, corpus="synthetic", optimizer="adamw", seed=0,
        lr=0.01, init_std=0.02, alpha_in=1.0, alpha_out=1.0, weight_decay=0.0, max_steps=10,
        steps=10, tokens=320, train_loss=2.5, val_loss=val_loss, diverged=False, status=status,
        wall_s=0.1, kernel="torch", error="", finished_at="2026-01-01T00:00:00+00:00",
    )  # fmt: skip
    return row


def curve(trial_id: str, steps: tuple[int, ...] = (5, 10)) -> list[dict]:
    return [
        {"trial_id": trial_id, "step": s, "tokens": 32 * s, "train_loss": 3.0, "val_loss": 3.0}
        for s in steps
    ]


def test_empty_store_reads_empty_tables(tmp_path):
    store = ResultsStore(tmp_path / "sweep")
    assert list(store.read_trials().columns) == TRIALS.names and store.read_trials().empty
    assert list(store.read_curves().columns) == CURVES.names
    assert not (tmp_path / "sweep").exists()


def test_append_then_upsert_never_duplicates(tmp_path):
    store = ResultsStore(tmp_path)
    store.append([trial("a-s0"), trial("b-s0", status="error")], curve("a-s0"))
    store.append([trial("b-s0", val_loss=1.5)], curve("b-s0", (5,)))
    trials = store.read_trials()
    assert sorted(trials["trial_id"]) == ["a-s0", "b-s0"]
    assert trials.set_index("trial_id").loc["b-s0", "status"] == "completed"
    store.append([trial("a-s0", val_loss=1.0)], curve("a-s0", (10,)))
    curves = store.read_curves()
    assert curves.groupby("trial_id")["step"].apply(list).to_dict() == {"a-s0": [10], "b-s0": [5]}
    assert store.read_trials().set_index("trial_id").loc["a-s0", "val_loss"] == 1.0


def test_plain_types_readable_by_pyarrow_and_pandas(tmp_path):
    store = ResultsStore(tmp_path)
    row = trial("a-s0", val_loss=math.nan)
    with store.lock():  # released: the parts are compacted into trials.parquet
        store.append([row], curve("a-s0"))
    table = pq.read_table(store.trials_path)
    assert table.schema.equals(TRIALS)
    plain = (pa.types.is_string, pa.types.is_int64, pa.types.is_float64, pa.types.is_boolean)
    assert all(any(check(f.type) for check in plain) for f in table.schema)
    frame = pd.read_parquet(store.trials_path)
    assert math.isnan(frame.loc[0, "val_loss"]) and frame.loc[0, "width"] == 16


def test_curves_of_unrecorded_trials_are_ignored(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    store.append([trial("a-s0")], curve("a-s0"))
    real_write = store._write_part

    def crash_on_trials(folder, number, schema, rows, ids):
        if folder == store.trials_parts:
            raise KeyboardInterrupt  # killed between the curves write and the trials write
        real_write(folder, number, schema, rows, ids)

    monkeypatch.setattr(store, "_write_part", crash_on_trials)
    with pytest.raises(KeyboardInterrupt):
        store.append([trial("b-s0")], curve("b-s0"))
    assert set(store.read_curves()["trial_id"]) == {"a-s0"}
    assert list(store.read_trials()["trial_id"]) == ["a-s0"]


def test_failed_write_keeps_previous_file_and_no_temp(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path)
    with store.lock():
        store.append([trial("a-s0")], [])
    before = store.trials_path.read_bytes()

    def half_write(table, handle, **_):
        handle.write(b"PAR1 partial")
        raise OSError("disk full")

    monkeypatch.setattr(store_io.pq, "write_table", half_write)
    with pytest.raises(OSError, match="disk full"):
        store.append([trial("b-s0")], [])
    assert store.trials_path.read_bytes() == before
    assert [p.name for p in tmp_path.rglob("*.tmp")] == []
    assert list(store.read_trials()["trial_id"]) == ["a-s0"]


def test_corrupt_or_foreign_file_is_a_results_error(tmp_path):
    store = ResultsStore(tmp_path)
    store.trials_path.write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match="unreadable"):
        store.read_trials()
    pq.write_table(pa.table({"x": [1]}), store.trials_path)
    with pytest.raises(ResultsError, match="unexpected columns"):
        store.read_trials()


def test_lock_is_exclusive(tmp_path):
    store = ResultsStore(tmp_path)
    with store.lock(), pytest.raises(ResultsError, match="in use"), ResultsStore(tmp_path).lock():
        pass
    with store.lock():
        pass


def test_spec_text_round_trip(tmp_path):
    store = ResultsStore(tmp_path / "s")
    assert store.read_spec() is None
    store.write_spec("name: s\n")
    assert store.read_spec() == "name: s\n"
