"""Proxy sweeps: YAML spec → Ray Tune (grid or Optuna, optional ASHA) → Parquet store."""

from hptransfer.sweep.run import SweepOutcome, run_sweep, run_trials
from hptransfer.sweep.spec import SweepSpec, load_spec, parse_spec

__all__ = [
    "SweepOutcome",
    "SweepSpec",
    "load_spec",
    "parse_spec",
    "run_sweep",
    "run_trials",
]
