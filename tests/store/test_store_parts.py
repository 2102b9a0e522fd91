"""Appending writes only the new rows (one part file per table), compaction folds the parts
into the tables, and a compaction stopped at any point (an exception, SIGKILL) leaves a folder
that reads the same and compacts cleanly afterwards."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from test_store_parquet import curve, trial

from hptransfer.store import ResultsStore
from hptransfer.store import parquet as store_parquet

REPO = Path(__file__).resolve().parents[2]


def _filled(directory: Path) -> ResultsStore:
    """A compacted table of 4 runs, then parts: 3 new runs, a re-run and a run whose error
    row is replaced by its completed one (curves of re-runs replaced)."""
    store = ResultsStore(directory)
    with store.lock():
        store.append([trial(f"a{i}-s0") for i in range(4)], curve("a0-s0"))
    store.append([trial("b0-s0", status="error")], curve("b0-s0", (5,)))
    store.append([trial("b1-s0"), trial("b2-s0")], curve("b1-s0"))
    store.append([trial("a0-s0", val_loss=1.0)], curve("a0-s0", (10,)))
    store.append([trial("b0-s0", val_loss=1.5)], curve("b0-s0", (5, 10)))
    return store


def _snapshot(store: ResultsStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    trials = store.read_trials().sort_values("trial_id", ignore_index=True)
    return trials, store.read_curves().reset_index(drop=True)


def _assert_same(a: tuple[pd.DataFrame, pd.DataFrame], b: tuple[pd.DataFrame, pd.DataFrame]):
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])


def test_an_append_writes_only_its_own_rows(tmp_path):
    store = _filled(tmp_path)
    before = store.trials_path.read_bytes()
    parts = sorted(store.trials_parts.iterdir())
    assert [len(pd.read_parquet(p)) for p in parts] == [1, 2, 1, 1]
    trials, curves = _snapshot(store)
    assert len(trials) == 7 and trials["trial_id"].is_unique
    row = trials.set_index("trial_id")
    assert row.loc["a0-s0", "val_loss"] == 1.0 and row.loc["b0-s0", "status"] == "completed"
    steps = curves.groupby("trial_id")["step"].apply(list).to_dict()
    assert steps == {"a0-s0": [10], "b0-s0": [5, 10], "b1-s0": [5, 10]}
    assert store.trials_path.read_bytes() == before  # the table itself was not rewritten
    with store.lock():
        pass  # a writer that ends compacts
    assert not store.trials_parts.exists() and not store.curves_parts.exists()
    _assert_same(_snapshot(store), (trials, curves))


def test_rows_rewritten_grow_linearly_with_the_sweep(tmp_path, monkeypatch):
    written = []
    real = store_parquet.write_table

    def counted(path, table):
        written.append(len(table))
        real(path, table)

    monkeypatch.setattr(store_parquet, "write_table", counted)
    store = ResultsStore(tmp_path)
    runs = 400
    for i in range(runs):
        store.append([trial(f"p{i}-s0")], [])
    assert len(store.read_trials()) == runs
    # one row per part, plus compactions that each grow the table by a quarter or more
    assert sum(written) < 8 * runs  # rewriting the whole table per run: 80,200 rows
    assert len(list(store.trials_parts.glob("*.parquet"))) < runs // 4


def _compaction_steps(directory: Path) -> int:
    """How many file operations (table writes, part deletions) a compaction of it makes."""
    store = ResultsStore(directory)
    return 2 + len(list(store.trials_parts.iterdir())) + len(list(store.curves_parts.iterdir()))


class _KillAfter:
    """Wraps file operations: the first ``steps`` run, the next raises KeyboardInterrupt."""

    def __init__(self, steps: int):
        self.left = steps

    def wrap(self, real):
        def operation(*args, **kwargs):
            if self.left == 0:
                raise KeyboardInterrupt  # killed here
            self.left -= 1
            return real(*args, **kwargs)

        return operation


def test_a_compaction_stopped_at_any_step_reads_the_same(tmp_path, monkeypatch):
    original = _filled(tmp_path / "original").directory
    expected = _snapshot(ResultsStore(original))
    steps = _compaction_steps(original)
    for stop in range(steps):
        folder = shutil.copytree(original, tmp_path / f"stop{stop}")
        kill = _KillAfter(stop)
        with monkeypatch.context() as patch:
            patch.setattr(store_parquet, "write_table", kill.wrap(store_parquet.write_table))
            patch.setattr(Path, "unlink", kill.wrap(Path.unlink))
            with pytest.raises(KeyboardInterrupt):
                ResultsStore(folder).compact()
        _assert_same(_snapshot(ResultsStore(folder)), expected)
        ResultsStore(folder).compact()
        _assert_same(_snapshot(ResultsStore(folder)), expected)
        assert not ResultsStore(folder).trials_parts.exists()


KILLED_COMPACTION = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from hptransfer.store import ResultsStore
    real = Path.unlink
    def slow_unlink(self, *args, **kwargs):
        real(self, *args, **kwargs)
        Path(sys.argv[2]).touch()
        time.sleep(60)
    Path.unlink = slow_unlink
    ResultsStore(sys.argv[1]).compact()
    """
)


def test_sigkill_during_compaction_loses_and_duplicates_nothing(tmp_path):
    store = _filled(tmp_path / "sweep")
    expected = _snapshot(store)
    marker = tmp_path / "deleted-one-part"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_COMPACTION, str(store.directory), str(marker)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert store.curves_parts.exists() or store.trials_parts.exists()  # killed half-way
    _assert_same(_snapshot(store), expected)
    with store.lock():
        store.append([trial("c0-s0")], curve("c0-s0"))
    trials, _ = _snapshot(store)
    assert len(trials) == 8 and trials["trial_id"].is_unique
    assert not store.trials_parts.exists()
