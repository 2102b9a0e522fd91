"""A target's live logs in its folder, one JSON object a line, written by rank 0.

``progress.jsonl``: every step's loss, seconds since the attempt began, tokens/s and ETA.
``curve.jsonl``: the curve points (``step, tokens, train_loss, val_loss``), flushed to disk
as they arrive. ``starts.jsonl``:
the first step of every attempt (1, or the step after the checkpoint it resumed from). A
resumed run first cuts the first two back to its checkpoint, so they never hold a step twice.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from hptransfer.store import write_text

PROGRESS_FILE = "progress.jsonl"
CURVE_FILE = "curve.jsonl"
STARTS_FILE = "starts.jsonl"


class ProgressLog:
    def __init__(
        self, folder: Path, steps: int, tokens_per_step: int, first_step: int, active: bool
    ) -> None:
        self.steps, self.tokens_per_step, self.first_step = steps, tokens_per_step, first_step
        self.active = active
        self.start = time.perf_counter()
        if active:
            folder.mkdir(parents=True, exist_ok=True)
            for name in (PROGRESS_FILE, CURVE_FILE):
                _cut(folder / name, first_step)
            with (folder / STARTS_FILE).open("a") as starts:
                _append(starts, {"first_step": first_step, "time": time.time()}, durable=True)
            self.progress = (folder / PROGRESS_FILE).open("a")
            self.curve = (folder / CURVE_FILE).open("a")

    def step(self, step: int, loss: float, point: dict[str, float] | None) -> None:
        if not self.active:
            return
        elapsed = time.perf_counter() - self.start
        done = step - self.first_step + 1
        record = {
            "step": step,
            "loss": loss,
            "elapsed_s": elapsed,
            "tokens_per_s": done * self.tokens_per_step / elapsed,
            "eta_s": (self.steps - step) * elapsed / done,
        }
        _append(self.progress, record, durable=False)
        if point is not None:
            _append(self.curve, point, durable=True)

    def close(self) -> None:
        if self.active:
            self.progress.close()
            self.curve.close()


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a log; a last line cut short by a kill is skipped."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def _append(file: Any, record: dict[str, Any], *, durable: bool) -> None:
    file.write(json.dumps(record) + "\n")
    file.flush()
    if durable:
        os.fsync(file.fileno())


def _cut(path: Path, first_step: int) -> None:
    """Keep the records before ``first_step`` (atomically)."""
    if not path.exists():
        return
    kept = [r for r in read_log(path) if r["step"] < first_step]
    write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
