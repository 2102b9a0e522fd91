"""Column schemas of the results tables: flat, plain types only (readable by pandas, DuckDB,
polars). One row per training run in ``trials.parquet``; one row per evaluation point in
``curves.parquet``. A run's HPs are stored under their own names (``lr``, ``init_std``, …).

Every table carries its format's version in the Parquet schema metadata
(``hptransfer.schema_version``). Version 1 (no key: tables written before versioning) lacks
the provenance columns and ``val_loss_se``, version 2 lacks ``run_key`` and ``same_as``,
version 3 lacks ``alpha_attn`` and ``readout_zero_init``, version 4 lacks ``lr_emb_ratio``;
they are read by :func:`upgrade`,
which adds the missing columns in memory: as nulls, or where an older run's value is known,
as that value (:data:`DEFAULTS`: a run without an attention multiplier had α_attn = 1, one
without κ trained its embeddings and readout at η (κ = 1), and no study stored before
version 4 zero-initialised its readout). The file is rewritten in the
current version only when runs are added to it. A table from a newer
hptransfer is refused with one line.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from hptransfer.errors import FormatVersionError, ResultsError
from hptransfer.provenance import FIELDS as PROVENANCE_COLUMNS

# Version 5: ``lr_emb_ratio`` in trials tables. Version 4: ``alpha_attn`` and
# ``readout_zero_init``. Version 3: ``run_key`` and ``same_as``. Version 2: provenance columns
# and val_loss_se (version 1: neither).
SCHEMA_VERSION = 5
VERSION_KEY = b"hptransfer.schema_version"
VERSION_METADATA = {VERSION_KEY: str(SCHEMA_VERSION).encode()}

HP_COLUMNS = (
    "lr", "init_std", "alpha_in", "alpha_out", "weight_decay", "alpha_attn", "lr_emb_ratio"
)  # fmt: skip
# Columns added in a later version whose value in an older table's rows is known.
DEFAULTS = {"alpha_attn": 1.0, "lr_emb_ratio": 1.0, "readout_zero_init": False}

TRIALS = pa.schema(
    [
        ("trial_id", pa.string()),
        ("point_id", pa.string()),  # the HP point: the trial's config without its seed
        # what determines the trained model (runtime.identity.run_key): runs with equal keys are
        # trained once
        ("run_key", pa.string()),
        ("sweep", pa.string()),
        ("spec_hash", pa.string()),
        ("parameterization", pa.string()),
        ("model", pa.string()),
        ("width", pa.int64()),
        ("depth", pa.int64()),
        ("heads", pa.int64()),
        ("density", pa.float64()),
        ("base_width", pa.int64()),
        ("base_density", pa.float64()),
        ("corpus", pa.string()),
        ("optimizer", pa.string()),
        ("seed", pa.int64()),
        *((name, pa.float64()) for name in HP_COLUMNS),
        ("readout_zero_init", pa.bool_()),  # the readout weight started at 0 (model's option)
        ("max_steps", pa.int64()),
        ("steps", pa.int64()),
        ("tokens", pa.int64()),
        ("train_loss", pa.float64()),
        ("val_loss", pa.float64()),
        ("val_loss_se", pa.float64()),  # standard error of val_loss over validation windows
        ("diverged", pa.bool_()),
        # "completed" (its whole budget, or diverged: see ``diverged``), "early_stopped" (by
        # ASHA: losses are the last reported), "error" (see ``error``; re-run on resume)
        ("status", pa.string()),
        # "" for a run trained as itself; else the trial_id of the run that trained the same
        # model (same run_key), whose results this row repeats
        ("same_as", pa.string()),
        ("wall_s", pa.float64()),
        ("kernel", pa.string()),  # the masked-matmul path the run used (torch, triton, dense)
        *((name, pa.string()) for name in PROVENANCE_COLUMNS),
        ("error", pa.string()),
        ("finished_at", pa.string()),
    ],
    metadata=VERSION_METADATA,
)

CURVES = pa.schema(
    [
        ("trial_id", pa.string()),
        ("step", pa.int64()),
        ("tokens", pa.int64()),
        ("train_loss", pa.float64()),
        ("val_loss", pa.float64()),
    ],
    metadata=VERSION_METADATA,
)


def table_version(schema: pa.Schema) -> int:
    """The format version a table was written in (1 when it carries none)."""
    raw = (schema.metadata or {}).get(VERSION_KEY)
    try:
        return int(raw) if raw is not None else 1
    except ValueError:
        return -1  # unreadable: refused as unknown


def check_readable(schema: pa.Schema, path: object) -> int:
    """The table's format version; a newer or unknown one is refused in one line."""
    version = table_version(schema)
    if not 1 <= version <= SCHEMA_VERSION:
        raise FormatVersionError(
            f"{path} was written in results format version {version}, newer than this "
            f"hptransfer reads (up to {SCHEMA_VERSION}): upgrade hptransfer to read it "
            "(the file was left unchanged)"
        )
    return version


def upgrade(table: pa.Table, schema: pa.Schema, path: object) -> pa.Table:
    """``table`` in the current format: an older version migrated in memory (missing columns
    added as nulls); a newer or unknown one, or unexpected columns, refused in one line."""
    if check_readable(table.schema, path) == SCHEMA_VERSION:
        return table
    extra = sorted(set(table.column_names) - set(schema.names))
    if extra:
        raise ResultsError(
            f"{path} has unexpected columns ({', '.join(extra)}); was it written by hptransfer?"
        )
    columns = [
        table[f.name] if f.name in table.column_names else _missing(f, len(table)) for f in schema
    ]
    try:
        return pa.Table.from_arrays(columns, schema=schema)
    except (pa.ArrowException, ValueError) as exc:
        raise ResultsError(f"{path} has columns of unexpected types ({exc})") from None


def _missing(column: pa.Field, rows: int) -> pa.Array:
    """An older table's missing ``column``: its known value (:data:`DEFAULTS`), else nulls."""
    if column.name in DEFAULTS:
        return pa.array([DEFAULTS[column.name]] * rows, column.type)
    return pa.nulls(rows, column.type)


def with_defaults(frame: pd.DataFrame) -> pd.DataFrame:
    """A trials frame read as it was written (without :func:`upgrade`) with the columns of
    :data:`DEFAULTS` it lacks filled in; other frames unchanged."""
    if "trial_id" not in frame or "lr" not in frame:
        return frame
    missing = {k: v for k, v in DEFAULTS.items() if k not in frame}
    return frame.assign(**missing) if missing else frame
