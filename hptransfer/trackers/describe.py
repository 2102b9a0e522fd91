"""What a tracked run logs as its config: the columns of its trials rows that say which run
was asked for (base HPs, shape, parameterization, sweep, ids and run key)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hptransfer.config import RunConfig

# Several runs in one trial (an Optuna point trained for every seed): these list each run's.
PER_RUN = ("seed", "trial_id", "run_key")


def run_config(runs: Sequence[RunConfig], point: str, sweep: str, spec_hash: str) -> dict[str, Any]:
    """The config of a trial (or target) training ``runs`` at HP point ``point``; ``point``
    empty where the id is given only when the trial ends (an Optuna suggestion's), and then
    no ``trial_id`` or ``point_id`` is logged."""
    from hptransfer.runtime.identity import CONFIG_COLUMNS, trial_row

    rows = [trial_row(point, run, sweep, spec_hash, {"status": ""}) for run in runs]
    config = {key: rows[0][key] for key in CONFIG_COLUMNS}
    if len(rows) > 1:
        config.update({key: ",".join(str(row[key]) for row in rows) for key in PER_RUN})
    if not point:
        del config["trial_id"], config["point_id"]
    return config
