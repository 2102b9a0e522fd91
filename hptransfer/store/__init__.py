"""Results storage: Parquet tables with a fixed flat schema, atomic upserts. No torch here."""

from hptransfer.store.parquet import ResultsStore, atomic_write
from hptransfer.store.schema import CURVES, HP_COLUMNS, STATUSES, TRIALS

__all__ = ["CURVES", "HP_COLUMNS", "STATUSES", "TRIALS", "ResultsStore", "atomic_write"]
