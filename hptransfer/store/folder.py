"""Every file of a results folder, named here once.

A sweep folder ``results/<sweep>/`` holds:

- ``trials.parquet``: one row per training run (schema :data:`hptransfer.store.TRIALS`);
- ``curves.parquet``: one row per run and logged step (:data:`hptransfer.store.CURVES`);
- ``trials.parts/``, ``curves.parts/``: runs stored since the tables were last compacted,
  one Parquet part file per append (:func:`parts_folder`);
- ``optuna.journal``: an Optuna search's studies (Optuna's JournalStorage; one per cell),
  unless ``search.storage`` names a database;
- ``spec.yaml``: the normalised sweep spec (a merged study has ``sources.json`` instead);
- ``fit.json``: the fitted optima (:mod:`hptransfer.analysis.fit`);
- ``transfer.parquet`` and ``transfer_curves.parquet``: runs transferred from the sweep;
- ``regret.parquet``: the transferred η's regret against a grid around it;
- ``targets/<trial_id>/``: a Ray Train target run's checkpoints, logs and artifact (the files
  inside are named by :mod:`hptransfer.distributed`);
- ``plots/``: figures; ``ray/``: Tune state and Ray's temp dir while a sweep runs;
- ``sweep.lock``: the writer lock, naming its holder.

The folder is local or in object storage (:mod:`hptransfer.store.location`). Nothing
outside :mod:`hptransfer.store` spells these names or globs a results root; a
module that adds a file to the folder adds its name here.
"""

from __future__ import annotations

from pathlib import Path

from hptransfer.store.location import Location, location

RESULTS_ROOT = Path("results")
TRIALS_FILE = "trials.parquet"
CURVES_FILE = "curves.parquet"
SPEC_FILE = "spec.yaml"
OPTUNA_JOURNAL_FILE = "optuna.journal"
SOURCES_FILE = "sources.json"
FIT_FILE = "fit.json"
TRANSFER_FILE = "transfer.parquet"
TRANSFER_CURVES_FILE = "transfer_curves.parquet"
REGRET_FILE = "regret.parquet"
TARGETS_DIR = "targets"
LOCK_FILE = "sweep.lock"
PLOTS_DIR = "plots"
RAY_DIR = "ray"
COORD_CHECK_FILE = "coord_check.parquet"


PART_SUFFIX = ".parts"


def parts_folder(table_file: str) -> str:
    """The folder of a table's part files: ``trials.parquet`` -> ``trials.parts``."""
    return table_file.removesuffix(".parquet") + PART_SUFFIX


def part_file(number: int) -> str:
    return f"part-{number:08d}.parquet"


def results_folder(text: str) -> Location:
    """A results folder: on this machine's file system (a shared disk included), or in
    object storage named by a URI (``s3://bucket/prefix``, ``gs://...``), checked now."""
    return location(text)


def latest(root: Location, name: str) -> Location | None:
    """The ``<root>/*/<name>`` modified last, or None when there is none."""
    paths = sorted(location(root).glob(f"*/{name}"), key=lambda p: p.stat().st_mtime)
    return paths[-1] if paths else None
