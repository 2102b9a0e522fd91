"""The one way files under results/ are read and written.

Writes are atomic: on a local disk a temp file in the same folder, fsync, ``os.replace``,
fsync of the folder; in object storage (:class:`~hptransfer.store.location.ObjectPath`) the
content serialised in memory, then uploaded in one request that publishes it whole. A crash
leaves the previous complete file, never a partial one. Parquet is read whole through
one open handle with page checksums verified, so a flipped byte is an error naming the file,
never a silently different number.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hptransfer.atomic import replace_atomically
from hptransfer.errors import ResultsError
from hptransfer.store.location import Location, ObjectPath
from hptransfer.store.schema import check_readable, with_defaults


def atomic_write(path: Location, write: Callable[[IO[bytes]], Any]) -> None:
    """Write ``path`` via a temp file in the same folder, fsync, then ``os.replace``; an
    object is written to memory, then published in one upload."""
    if isinstance(path, ObjectPath):
        buffer = io.BytesIO()
        write(buffer)
        path.write_bytes(buffer.getvalue())
        return
    replace_atomically(path, write)


def write_text(path: Location, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(text.encode()))


def write_table(path: Location, table: pa.Table) -> None:
    """Write an Arrow table as Parquet with page checksums, atomically."""
    atomic_write(path, lambda f: pq.write_table(table, f, write_page_checksum=True))


def write_frame(path: Location, frame: pd.DataFrame) -> None:
    """Write a tidy DataFrame (coord-check records, benchmarks) as Parquet, atomically."""
    atomic_write(path, lambda f: frame.to_parquet(f, index=False))


def read_table(path: Location) -> pa.Table:
    """Read a whole Parquet file; a corrupt or cut one is a :class:`ResultsError` naming the
    file and the way out, and the file is left as it was."""
    try:
        # One open handle: a path is opened more than once by pyarrow, and a writer's
        # os.replace in between would pair one file's footer with another's pages.
        with open_input(path) as handle:
            return pq.read_table(handle, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as exc:
        raise _corrupt(path, exc) from None


def read_frame(path: Location, required: Sequence[str] = ()) -> pd.DataFrame:
    """A Parquet file as a DataFrame, checking that it exists and has ``required`` columns."""
    if not path.is_file():
        raise ResultsError(f"{path} not found: run `hptransfer sweep` first")
    table = read_table(path)
    check_readable(table.schema, path)  # older versions lack only columns analysis ignores
    try:
        frame = table.to_pandas()
    except (ValueError, KeyError, TypeError) as exc:  # damaged pandas metadata
        raise _corrupt(path, exc) from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ResultsError(f"{path} lacks column(s) {', '.join(missing)}")
    return with_defaults(frame)


def open_input(path: Location) -> IO[bytes] | pa.BufferReader:
    """One open handle on a whole file (an object: read in one request)."""
    return path.open_input() if isinstance(path, ObjectPath) else open(path, "rb")


def _corrupt(path: Location, exc: Exception) -> ResultsError:
    detail = " ".join(str(exc).split())[:200]
    return ResultsError(
        f"{path} is corrupt or unreadable ({detail}); it was left unchanged: restore it from a "
        f"backup, or move it aside (mv {path} {path}.corrupt) and re-run the command that "
        "wrote it to train the runs it held again"
    )
