"""A target's live progress: rank 0's records, sent to the driver as they happen.

Rank 0 sends, in batches (at every curve point, else at most every :data:`SEND_EVERY_S`):
one *start* record per attempt, ``{"first_step", "curve"}`` (1 and no points, or the step
after the checkpoint it resumed from and the curve that checkpoint holds), then one record a
step, ``{"step", "loss", "elapsed_s", "tokens_per_s", "eta_s", "point"}`` (``point``: the
curve point of that step, or None). On Ray Train the batches travel through a Ray queue
(:func:`ray_sender`), whether the target's folder is on a disk or in object storage; nothing
of it is a file. What must survive a crash, the curve, is in every checkpoint, so a crash
loses at most the steps since the last one. :class:`Follower` rebuilds the curve from the
records on the driver.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Record = dict[str, Any]
Send = Callable[[list[Record]], None]
SEND_EVERY_S = 1.0


class ProgressLog:
    """Rank 0's side: builds the records and sends them; inactive (``send`` None) elsewhere."""

    def __init__(
        self,
        send: Send | None,
        steps: int,
        tokens_per_step: int,
        first_step: int,
        curve: list[Record],
    ) -> None:
        self.send, self.steps, self.tokens_per_step = send, steps, tokens_per_step
        self.first_step = first_step
        self.curve = list(curve)  # the points so far, this attempt's appended
        self.start = self.sent = time.perf_counter()
        self.pending: list[Record] = [{"first_step": first_step, "curve": self.curve[:]}]

    def step(self, step: int, loss: float, point: Record | None) -> None:
        if point is not None:
            self.curve.append(point)
        if self.send is None:
            return
        now = time.perf_counter()
        elapsed, done = now - self.start, step - self.first_step + 1
        self.pending.append(
            {
                "step": step,
                "loss": loss,
                "elapsed_s": elapsed,
                "tokens_per_s": done * self.tokens_per_step / elapsed,
                "eta_s": (self.steps - step) * elapsed / done,
                "point": point,
            }
        )
        if point is not None or now - self.sent >= SEND_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if self.send is not None and self.pending:
            self.send(self.pending)
            self.pending, self.sent = [], time.perf_counter()


class Follower:
    """The driver's side: the curve and the last step record, from the records received."""

    def __init__(self) -> None:
        self.curve: list[Record] = []
        self.last: Record | None = None

    def add(self, records: list[Record]) -> bool:
        """Take ``records`` in; whether the curve changed."""
        changed = False
        for record in records:
            if "first_step" in record:  # an attempt began: its curve replaces what was seen
                changed = changed or record["curve"] != self.curve
                self.curve = list(record["curve"])
            else:
                self.last = record
                if record["point"] is not None:
                    self.curve.append(record["point"])
                    changed = True
        return changed


def step_losses(records: list[Record]) -> list[float]:
    """The training loss of every step record, in order."""
    return [record["loss"] for record in records if "loss" in record]


def ray_sender(queue: Any) -> Send:
    """A sender into a :class:`ray.util.queue.Queue` the driver reads."""
    return lambda records: queue.put_nowait_batch([records])


def drain(queue: Any) -> list[Record]:
    """Everything in the queue now, as one list of records (batches in order)."""
    batches = queue.get_nowait_batch(queue.qsize())
    return [record for batch in batches for record in batch]
