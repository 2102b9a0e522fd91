"""Column schemas of the results tables: flat, plain types only (readable by pandas, DuckDB,
polars). One row per training run in ``trials.parquet``; one row per evaluation point in
``curves.parquet``. A run's HPs are stored under their own names (``lr``, ``init_std``, …).
"""

from __future__ import annotations

import pyarrow as pa

HP_COLUMNS = ("lr", "init_std", "alpha_in", "alpha_out", "weight_decay")

# status: "completed" (ran its whole budget or diverged; see ``diverged``), "early_stopped"
# (stopped by ASHA: losses are the last reported), "error" (see ``error``; re-run on resume).
STATUSES = ("completed", "early_stopped", "error")

TRIALS = pa.schema(
    [
        ("trial_id", pa.string()),
        ("point_id", pa.string()),  # the HP point: the trial's config without its seed
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
        ("max_steps", pa.int64()),
        ("steps", pa.int64()),
        ("tokens", pa.int64()),
        ("train_loss", pa.float64()),
        ("val_loss", pa.float64()),
        ("diverged", pa.bool_()),
        ("status", pa.string()),
        ("wall_s", pa.float64()),
        ("kernel", pa.string()),
        ("error", pa.string()),
        ("finished_at", pa.string()),
    ]
)

CURVES = pa.schema(
    [
        ("trial_id", pa.string()),
        ("step", pa.int64()),
        ("tokens", pa.int64()),
        ("train_loss", pa.float64()),
        ("val_loss", pa.float64()),
    ]
)
