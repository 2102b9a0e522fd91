"""Proxy sweeps: YAML spec → Ray Tune (grid or Optuna, optional ASHA) → Parquet store."""

from hptransfer.sweep.parse import load_spec, parse_spec
from hptransfer.sweep.run import SweepOutcome, run_sweep, run_trials
from hptransfer.sweep.spec import SweepSpec

__all__ = [
    "SweepOutcome",
    "SweepSpec",
    "load_spec",
    "parse_spec",
    "run_sweep",
    "run_trials",
]
