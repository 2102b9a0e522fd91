"""Results storage: every file of a results folder is named, read and written here.

``folder``: the file names of a sweep folder; ``io``: the atomic write and the one Parquet
reader; ``parquet``: a sweep's trials/curves tables (atomic upserts, the writer lock);
``schema``: their columns; ``location``: a folder on this disk or in object storage
(``s3://``, ``gs://``), ``lease``: the writer lock there; ``merge``: a study folder from
several sweeps. No torch here.
"""

from hptransfer.store.io import (
    atomic_write,
    read_frame,
    read_table,
    write_frame,
    write_table,
    write_text,
)
from hptransfer.store.location import Location, ObjectPath, location
from hptransfer.store.parquet import ResultsStore
from hptransfer.store.schema import CURVES, HP_COLUMNS, TRIALS

__all__ = [
    "CURVES",
    "HP_COLUMNS",
    "TRIALS",
    "Location",
    "ObjectPath",
    "ResultsStore",
    "atomic_write",
    "location",
    "read_frame",
    "read_table",
    "write_frame",
    "write_table",
    "write_text",
]
