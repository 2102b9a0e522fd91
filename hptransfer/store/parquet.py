"""The tables of one sweep folder: ``trials.parquet``, ``curves.parquet``, ``spec.yaml``.

Writes are atomic (:mod:`hptransfer.store.io`): a crash leaves the previous complete file,
never a partial one. Rows are upserted by ``trial_id``, so a trial
that is run again replaces its rows instead of duplicating them. Curves are written before
trials, and ``trials.parquet`` is the source of truth: curve rows of a trial that is not in
it (a crash between the two writes) are ignored on read and replaced when the trial re-runs.
Other runs of a sweep (``hptransfer transfer``) live in the same folder under other file names.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hptransfer.errors import ResultsError
from hptransfer.store.folder import CURVES_FILE, LOCK_FILE, SPEC_FILE, TRIALS_FILE
from hptransfer.store.io import read_table, write_table, write_text
from hptransfer.store.schema import CURVES, TRIALS, upgrade


class ResultsStore:
    """Reads and appends the Parquet tables under one results folder (created on write)."""

    def __init__(
        self,
        directory: str | Path,
        *,
        trials_file: str = TRIALS_FILE,
        curves_file: str = CURVES_FILE,
    ):
        self.directory = Path(directory)
        self.trials_path = self.directory / trials_file
        self.curves_path = self.directory / curves_file
        self.spec_path = self.directory / SPEC_FILE

    def append(self, trials: Sequence[dict[str, Any]], curves: Sequence[dict[str, Any]]) -> None:
        """Upsert finished trials and their curve points (rows keyed by ``trial_id``)."""
        ids = [row["trial_id"] for row in trials]
        assert all(row["trial_id"] in ids for row in curves), "curve rows of unlisted trials"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._upsert(self.curves_path, CURVES, curves, ids)
        self._upsert(self.trials_path, TRIALS, trials, ids)

    def append_curve(self, trial_id: str, curve: Sequence[dict[str, Any]]) -> None:
        """Replace one run's curve points while it trains (read back once its trial row is
        stored: a crash before that leaves them unread and replaced by the re-run)."""
        rows = [{"trial_id": trial_id, **point} for point in curve]
        self.directory.mkdir(parents=True, exist_ok=True)
        self._upsert(self.curves_path, CURVES, rows, [trial_id])

    def read_trials(self) -> pd.DataFrame:
        return self._read(self.trials_path, TRIALS).to_pandas()

    def read_curves(self) -> pd.DataFrame:
        """Curve points of the trials in ``trials.parquet``, sorted by trial and step."""
        curves = self._read(self.curves_path, CURVES)
        known = self._read(self.trials_path, TRIALS)["trial_id"]
        curves = curves.filter(pc.is_in(curves["trial_id"], value_set=known))
        return curves.sort_by([("trial_id", "ascending"), ("step", "ascending")]).to_pandas()

    def read_spec(self) -> str | None:
        return self.spec_path.read_text() if self.spec_path.exists() else None

    def write_spec(self, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        write_text(self.spec_path, text)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder's writer lock (one sweep writes a results folder at a time).

        The holder writes who it is into ``sweep.lock``, so a refused process can say.
        """
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ResultsError(
                f"cannot create the results folder {self.directory}: {exc.strerror or exc}"
            ) from None
        with open(self.directory / LOCK_FILE, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another hptransfer process"
                raise ResultsError(
                    f"{self.directory} is in use by {holder}; wait for it to finish or use "
                    "another sweep name"
                ) from None
            handle.truncate(0)
            since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
            handle.write(f"pid {os.getpid()} on {socket.gethostname()} (since {since})")
            handle.flush()
            try:
                yield
            finally:
                handle.truncate(0)
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self, path: Path, schema: pa.Schema) -> pa.Table:
        if not path.exists():
            return schema.empty_table()
        table = upgrade(read_table(path), schema, path)
        if not table.schema.equals(schema):
            raise ResultsError(f"{path} has unexpected columns; was it written by hptransfer?")
        return table

    def _upsert(
        self, path: Path, schema: pa.Schema, rows: Sequence[dict[str, Any]], ids: list[str]
    ) -> None:
        for row in rows:
            assert set(row) == set(schema.names), f"row columns differ: {sorted(row)}"
        table = pa.Table.from_pylist(list(rows), schema=schema)
        old = self._read(path, schema)
        stale = pc.is_in(old["trial_id"], value_set=pa.array(ids, pa.string()))
        table = pa.concat_tables([old.filter(pc.invert(stale)), table])
        write_table(path, table)
