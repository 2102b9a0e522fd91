"""The tables of one sweep folder: ``trials.parquet``, ``curves.parquet``, ``spec.yaml``.

Appending costs O(new rows): each append writes one part file per table
(``trials.parts/part-00000007.parquet``, the curves' part first), and the parts are folded
into the tables (*compaction*) once there are a quarter as many as the table has rows, and
when the writer lock is released. A table reads as its compacted file with the parts applied
in order.

Every file is written atomically (:mod:`hptransfer.store.io`): a crash leaves whole files,
never a partial one. Rows are upserted by ``trial_id``: a part replaces every earlier row of
the trials it lists (in its metadata), so a trial that is run again replaces its rows instead
of duplicating them, and a compaction killed half-way (tables rewritten, parts not yet
deleted) reads the same, since re-applying a folded part changes nothing. Curves are written
before trials, and the trials table is the source of truth: curve rows of a trial that is not
in it (a crash between the two writes) are ignored on read and replaced when the trial
re-runs. Other runs of a sweep (``hptransfer transfer``) live in the same folder under other
file names.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hptransfer.errors import ResultsError
from hptransfer.store.folder import (
    CURVES_FILE,
    LOCK_FILE,
    SPEC_FILE,
    TRIALS_FILE,
    part_file,
    parts_folder,
)
from hptransfer.store.io import open_input, read_table, write_table, write_text
from hptransfer.store.lease import lease
from hptransfer.store.location import Location, location
from hptransfer.store.schema import CURVES, TRIALS, VERSION_METADATA, check_readable, upgrade

REPLACES_KEY = b"hptransfer.replaces"  # a part's metadata: the trial ids whose rows it replaces
# Parts are compacted once there are this many and at least a quarter as many as the table
# has rows: each compaction grows the table by a quarter or more, so the rows rewritten over
# a sweep stay within a constant factor of the rows stored (not quadratic in them).
COMPACT_MIN_PARTS = 16
COMPACT_GROWTH = 4
READ_ATTEMPTS = 20  # reads restarted because a compaction deleted the parts being read


class ResultsStore:
    """Reads and appends the Parquet tables under one results folder (created on write)."""

    def __init__(
        self,
        directory: str | Location,
        *,
        trials_file: str = TRIALS_FILE,
        curves_file: str = CURVES_FILE,
    ):
        self.directory = location(directory)
        self.trials_path = self.directory / trials_file
        self.curves_path = self.directory / curves_file
        self.spec_path = self.directory / SPEC_FILE
        self.trials_parts = self.directory / parts_folder(trials_file)
        self.curves_parts = self.directory / parts_folder(curves_file)
        self._tables_checked = False

    def append(self, trials: Sequence[dict[str, Any]], curves: Sequence[dict[str, Any]]) -> None:
        """Upsert finished trials and their curve points (rows keyed by ``trial_id``)."""
        ids = [row["trial_id"] for row in trials]
        assert all(row["trial_id"] in ids for row in curves), "curve rows of unlisted trials"
        self._check_tables_once()
        number = self._next_part()
        self._write_part(self.curves_parts, number, CURVES, curves, ids)
        self._write_part(self.trials_parts, number, TRIALS, trials, ids)
        if self._parts_outgrew_tables():
            self.compact()

    def append_curve(self, trial_id: str, curve: Sequence[dict[str, Any]]) -> None:
        """Replace one run's curve points while it trains (read back once its trial row is
        stored: a crash before that leaves them unread and replaced by the re-run)."""
        rows = [{"trial_id": trial_id, **point} for point in curve]
        self._write_part(self.curves_parts, self._next_part(), CURVES, rows, [trial_id])

    def exists(self) -> bool:
        """Whether the folder holds a trials table (compacted, or parts only)."""
        return self.trials_path.is_file() or bool(_parts(self.trials_parts))

    def read_trials(self) -> pd.DataFrame:
        return self._read(self.trials_path, self.trials_parts, TRIALS).to_pandas()

    def read_curves(self) -> pd.DataFrame:
        """Curve points of the trials in the trials table, sorted by trial and step."""
        curves = self._read(self.curves_path, self.curves_parts, CURVES)
        known = self._read(self.trials_path, self.trials_parts, TRIALS)["trial_id"]
        curves = curves.filter(pc.is_in(curves["trial_id"], value_set=known))
        return curves.sort_by([("trial_id", "ascending"), ("step", "ascending")]).to_pandas()

    def read_all_curves(self) -> pd.DataFrame:
        """Every stored curve point, unfiltered and in stored order."""
        return self._read(self.curves_path, self.curves_parts, CURVES).to_pandas()

    def compact(self) -> None:
        """Fold the part files into the tables: each table is rewritten whole (atomically),
        then its folded parts are deleted; curves first, like every write. Call it holding
        the writer lock. A compaction killed at any point leaves a folder that reads the same."""
        for path, parts, schema in (
            (self.curves_path, self.curves_parts, CURVES),
            (self.trials_path, self.trials_parts, TRIALS),
        ):
            folded = _parts(parts)
            if not folded:
                continue
            write_table(path, self._read(path, parts, schema, folded))
            for part in folded:
                part.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                parts.rmdir()  # a tidy folder; a part written meanwhile keeps it

    def read_spec(self) -> str | None:
        return self.spec_path.read_text() if self.spec_path.exists() else None

    def write_spec(self, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        write_text(self.spec_path, text)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder's writer lock (one sweep writes a results folder at a time).

        The holder writes who it is into ``sweep.lock``, so a refused process can say. On
        a local disk it is a file lock; in object storage a lease (:mod:`.lease`).
        """
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ResultsError(
                f"cannot create the results folder {self.directory}: {exc.strerror or exc}"
            ) from None
        hold = _file_lock if isinstance(self.directory, Path) else lease
        with hold(self.directory / LOCK_FILE):
            try:
                yield
            except KeyboardInterrupt:  # Ctrl-C, kill: what is stored is whole, keep it so
                self.compact()
                raise
            self.compact()  # a finished writer leaves plain tables behind

    def _read(
        self, path: Location, parts: Location, schema: pa.Schema, folded: list | None = None
    ) -> pa.Table:
        """The table: its compacted file with the part files (``folded``, default all)
        applied in order, each replacing the earlier rows of the trials it lists.

        The parts are listed before the table is read: a compaction in between (which
        deletes parts it folded into the table) makes a listed part vanish, and the read
        starts again; a part folded but still there is applied twice, to the same effect."""
        for _ in range(READ_ATTEMPTS):
            listed = _parts(parts) if folded is None else folded
            try:
                return _apply_parts(_read_file(path, schema), listed, schema)
            except _PartVanished:
                continue
        raise ResultsError(f"{parts} kept changing while it was read: try again")

    def _check_tables_once(self) -> None:
        """Refuse to add parts beside a table this version cannot read (a newer format):
        checked from the tables' footers at this store's first append."""
        if self._tables_checked:
            return
        for path in (self.curves_path, self.trials_path):
            if path.exists():
                try:
                    with open_input(path) as handle:
                        schema = pq.read_schema(handle)
                except (OSError, pa.ArrowException):
                    continue  # a damaged table: the next full read says so
                check_readable(schema, path)
        self._tables_checked = True

    def _next_part(self) -> int:
        parts = [*_parts(self.trials_parts), *_parts(self.curves_parts)]
        return max((int(part.stem.removeprefix("part-")) for part in parts), default=0) + 1

    def _write_part(
        self,
        folder: Location,
        number: int,
        schema: pa.Schema,
        rows: Sequence[dict[str, Any]],
        ids: Sequence[str],
    ) -> None:
        for row in rows:
            assert set(row) == set(schema.names), f"row columns differ: {sorted(row)}"
        metadata = {**VERSION_METADATA, REPLACES_KEY: json.dumps(list(ids)).encode()}
        table = pa.Table.from_pylist(list(rows), schema=schema.with_metadata(metadata))
        folder.mkdir(parents=True, exist_ok=True)
        write_table(folder / part_file(number), table)

    def _parts_outgrew_tables(self) -> bool:
        parts = len(_parts(self.trials_parts))
        if parts < COMPACT_MIN_PARTS:
            return False
        rows = 0
        if self.trials_path.exists():
            with open_input(self.trials_path) as handle:
                rows = pq.read_metadata(handle).num_rows
        return parts * COMPACT_GROWTH >= rows


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``, its holder written into it."""
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another hptransfer process"
            raise ResultsError(
                f"{path.parent} is in use by {holder}; wait for it to finish or use another "
                "sweep name"
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


class _PartVanished(Exception):
    """A listed part file was deleted (folded into its table) before it was read."""


def _apply_parts(table: pa.Table, parts: list[Location], schema: pa.Schema) -> pa.Table:
    tables, replaced = [table], [[]]
    for part in parts:
        try:
            raw = read_table(part)
        except ResultsError:
            if not part.exists():
                raise _PartVanished from None
            raise
        replaced.append(json.loads((raw.schema.metadata or {}).get(REPLACES_KEY, b"[]")))
        tables.append(_read_file(part, schema, raw))
    if len(tables) == 1:
        return table
    later: set[str] = set()
    kept = []
    for part_table, ids in zip(reversed(tables), reversed(replaced), strict=True):
        stale = pc.is_in(part_table["trial_id"], value_set=pa.array(sorted(later), pa.string()))
        kept.append(part_table.filter(pc.invert(stale)))
        later.update(ids)
    return pa.concat_tables(reversed(kept))


def _parts(folder: Location) -> list[Location]:
    """A table's part files, in the order they were written."""
    return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []


def _read_file(path: Location, schema: pa.Schema, table: pa.Table | None = None) -> pa.Table:
    """A table file (or its already-read ``table``) in the current format; none: empty."""
    if table is None and not path.exists():
        return schema.empty_table()
    table = upgrade(read_table(path) if table is None else table, schema, path)
    if not table.schema.equals(schema):
        raise ResultsError(f"{path} has unexpected columns; was it written by hptransfer?")
    return table.replace_schema_metadata(schema.metadata)
