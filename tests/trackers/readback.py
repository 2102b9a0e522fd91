"""Reading back what each tracker stored, offline: W&B's offline run files, an MLflow store,
TensorBoard event files. Each reader returns ``{run name: Logged}``."""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WANDB_WRITE_S = 60.0  # how long W&B's service may take to write a finished run's file
WANDB_BLOCK = 32 * 1024  # W&B's .wandb file: LevelDB-style log blocks of records
WANDB_HEADER = struct.Struct("<4sHB")  # ":W&B", magic, version
RECORD_HEADER = struct.Struct("<IHB")  # checksum, length, type (1 full, 2 first, 3 mid, 4 last)


@dataclass
class Logged:
    """One tracked run: its config, and each metric's (step, value) points in order."""

    config: dict[str, Any]
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def last(self, metric: str) -> float:
        return self.metrics[metric][-1][1]

    def steps(self, metric: str) -> list[int]:
        return [step for step, _ in self.metrics[metric]]


def wandb_runs(folder: Path) -> dict[str, Logged]:
    """The offline runs under ``folder/wandb/``, parsed from their ``.wandb`` record logs."""
    return {
        name: logged
        for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb"))
        for name, logged in [_wandb_run(_finished_records(path))]
    }


def _finished_records(path: Path) -> list[Any]:
    """A run file's records once they end with its exit record: W&B's service process writes
    the file after ``finish()`` returns."""
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2

    deadline = time.monotonic() + WANDB_WRITE_S
    while True:
        blob = path.read_bytes()
        try:
            records = [wandb_internal_pb2.Record.FromString(data) for data in _wandb_records(blob)]
        except DecodeError:  # a record still being written
            records = []
        if records and records[-1].WhichOneof("record_type") == "exit":
            return records
        assert time.monotonic() < deadline, f"{path}: no exit record after {WANDB_WRITE_S} s"
        time.sleep(0.2)


def _wandb_run(records: list[Any]) -> tuple[str, Logged]:
    name, logged = "", Logged({})
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            name = record.run.display_name
            logged.config.update(_wandb_items(record.run.config.update))
        elif kind == "config":
            logged.config.update(_wandb_items(record.config.update))
        elif kind == "history":
            values = _wandb_items(record.history.item)
            step = int(values.pop("_step"))
            for key, value in values.items():
                if not key.startswith("_"):
                    logged.metrics.setdefault(key, []).append((step, value))
    return name, logged


def _wandb_records(blob: bytes) -> list[bytes]:
    records, chunks, at = [], b"", WANDB_HEADER.size
    while at + RECORD_HEADER.size <= len(blob):
        if WANDB_BLOCK - at % WANDB_BLOCK < RECORD_HEADER.size:  # a block's padding
            at += WANDB_BLOCK - at % WANDB_BLOCK
            continue
        _, length, kind = RECORD_HEADER.unpack_from(blob, at)
        at += RECORD_HEADER.size
        chunks += blob[at : at + length]
        at += length
        if kind in (1, 4):
            records.append(chunks)
            chunks = b""
    return records


def _wandb_items(items: Any) -> dict[str, Any]:
    values = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}
    return {
        key: value.get("value", value) if isinstance(value, dict) else value
        for key, value in values.items()
    }


def mlflow_runs(tracking_uri: str, experiment: str) -> dict[str, Logged]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    runs = {}
    for run in client.search_runs([found.experiment_id]):
        logged = Logged(dict(run.data.params))
        for key in run.data.metrics:
            history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)
            logged.metrics[key] = [(m.step, m.value) for m in history]
        logged.config["status"] = run.info.status
        runs[run.info.run_name] = logged
    return runs


def tensorboard_runs(folder: Path) -> dict[str, Logged]:
    """Every run folder under ``folder``: its hyperparameters and scalars."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    runs = {}
    for run in sorted(path for path in folder.iterdir() if path.is_dir()):
        events = EventAccumulator(str(run))
        events.Reload()
        logged = Logged({})
        for content in events.PluginTagToContent("hparams").values():
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            for key, value in data.session_start_info.hparams.items():
                logged.config[key] = getattr(value, value.WhichOneof("kind"))
        for tag in events.Tags()["scalars"]:
            logged.metrics[tag] = [(event.step, event.value) for event in events.Scalars(tag)]
        runs[run.name] = logged
    return runs
