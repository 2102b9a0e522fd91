"""What a sweep prints: one line per finished run, and a summary of the best HPs per cell."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import pandas as pd

from hptransfer.display import format_duration, format_hp
from hptransfer.sweep.trials import objective

CELL = ["parameterization", "width", "density", "depth"]


class Progress:
    """Prints one line per finished run: count, cell, searched HPs, loss, time, ETA."""

    def __init__(self, total: int, searched: Sequence[str], out: TextIO):
        self.total = total
        self.searched = tuple(searched)
        self.out = out
        self.done = 0
        self.start = time.monotonic()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks (for a restore we never do); a stream may not pickle.
        return {**self.__dict__, "out": None}

    def record(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            self.done += 1
            elapsed = time.monotonic() - self.start
            eta = elapsed / self.done * max(0, self.total - self.done)
            width = len(str(self.total))
            hps = " ".join(f"{name}={format_hp(row[name])}" for name in self.searched)
            print(
                f"[{self.done:{width}d}/{self.total}] {row['parameterization']:<5} "
                f"w={row['width']} density={row['density']:g} depth={row['depth']} "
                f"seed={row['seed']} {hps}  "
                f"{_outcome(row)}  {_trained(row)}  ETA {format_duration(eta)}",
                file=self.out,
                flush=True,
            )


def _trained(row: Mapping[str, Any]) -> str:
    """How long the run trained, or which stored run it repeats (same model)."""
    return f"same as {row['same_as']}" if row.get("same_as") else _wall(row["wall_s"])


def _wall(seconds: float) -> str:
    return f"{seconds:.1f}s" if math.isfinite(seconds) else "-"


def _outcome(row: Mapping[str, Any]) -> str:
    if row["status"] == "error":
        lines = [line for line in str(row["error"]).splitlines() if line.strip()]
        return f"ERROR {lines[-1] if lines else ''}"
    if row["diverged"]:
        return f"diverged at step {row['steps']} (train {row['train_loss']:.3g})"
    stopped = f" (stopped at step {row['steps']})" if row["status"] == "early_stopped" else ""
    return f"val {row['val_loss']:.4f}{stopped}"


def best_per_cell(trials: pd.DataFrame, searched: Sequence[str]) -> pd.DataFrame:
    """Per (parameterization, width, density, depth): the HP point with the lowest mean objective
    over seeds (diverged runs count with their capped training loss), and whether it lies
    on the edge of the values tried."""
    done = trials[trials["status"] != "error"].copy()
    if done.empty:
        return pd.DataFrame()
    done["objective"] = [
        objective(v, t, d)
        for v, t, d in zip(done["val_loss"], done["train_loss"], done["diverged"], strict=True)
    ]
    points = done.groupby([*CELL, "point_id", *searched], as_index=False).agg(
        val_loss=("objective", "mean"), seeds=("seed", "count"), diverged=("diverged", "sum")
    )
    rows = []
    for _, cell in points.groupby(CELL, sort=True):
        best = cell.loc[cell["val_loss"].idxmin()]
        edge = [hp for hp in searched if best[hp] in (cell[hp].min(), cell[hp].max())]
        rows.append(
            {
                **{key: best[key] for key in (*CELL, *searched, "val_loss", "seeds")},
                "points": len(cell),
                "diverged": int(cell["diverged"].sum()),
                "note": f"{', '.join(edge)} at edge of range" if len(cell) > 2 and edge else "",
            }
        )
    return pd.DataFrame(rows)


def format_summary(best: pd.DataFrame, searched: Sequence[str]) -> str:
    if best.empty:
        return "no finished trials"
    table = best.copy()
    for hp in searched:
        table[hp] = table[hp].map(format_hp)
    table["val_loss"] = table["val_loss"].map(lambda v: f"{v:.4f}")
    table["density"] = table["density"].map(lambda v: f"{v:g}")
    return "best HPs per cell (mean over seeds):\n" + table.to_string(index=False)
