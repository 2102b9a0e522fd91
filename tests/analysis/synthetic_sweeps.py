"""Synthetic sweep tables with a known optimum, in the store's schema (trials/curves Parquet)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

LR_GRID = 2.0 ** np.arange(-10, -2.9, 0.5)  # 15 points, 2^0.5 apart
STEPS = 100


def true_log2_lr(parameterization: str, width: int, density: float) -> float:
    """Known optimum: SP drifts 0.5 octave per halving of density, SμPar stays put."""
    drift = 0.5 * np.log2(1 / density) if parameterization == "sp" else 0.0
    return -7.3 + drift


def make_trials(
    optimum: Callable[[str, int, float], float] = true_log2_lr,
    *,
    parameterizations: tuple[str, ...] = ("sp", "supar"),
    widths: tuple[int, ...] = (64, 128),
    densities: tuple[float, ...] = (1.0, 0.25),
    seeds: tuple[int, ...] = (0, 1, 2),
    hps: dict[str, np.ndarray] | None = None,
    curvature: float = 0.05,
    noise: float = 0.004,
    diverge_octaves: float = 2.5,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per trial; loss = floor + curvature·(log2 lr − optimum)² + seed and trial noise.

    Trials more than ``diverge_octaves`` above the optimum diverge. Extra ``hps`` (e.g.
    init_std) add a penalty of ``curvature``·(octaves from 2^-6)² each (a joint grid).
    """
    rng = np.random.default_rng(seed)
    hps = {"lr": LR_GRID, **(hps or {})}
    rows = []
    for param, width, density, s in itertools.product(parameterizations, widths, densities, seeds):
        offset = rng.normal(0, noise)  # a seed's shift, shared by its HP points
        for values in itertools.product(*hps.values()):
            point = dict(zip(hps, values, strict=True))
            dist = np.log2(point["lr"]) - optimum(param, width, density)
            penalty = sum((np.log2(v) + 6) ** 2 for k, v in point.items() if k != "lr")
            loss = 2.5 - 0.1 * np.log2(width) + curvature * (dist**2 + penalty)
            loss += offset + rng.normal(0, noise)
            diverged = dist > diverge_octaves
            rows.append(
                {
                    "trial_id": f"t{len(rows):05d}",
                    "sweep": "synthetic",
                    "parameterization": param,
                    "model": "gpt",
                    "width": width,
                    "depth": 2,
                    "density": density,
                    "seed": s,
                    **point,
                    "init_std": point.get("init_std", 0.02),
                    "base_width": min(widths),
                    "base_density": 1.0,
                    "max_steps": STEPS,
                    "steps": STEPS // 3 if diverged else STEPS,
                    "tokens": STEPS * 2048,
                    "train_loss": np.nan if diverged else loss - 0.05,
                    "val_loss": np.nan if diverged else loss,
                    "diverged": diverged,
                    "status": "completed",
                    "wall_s": 1.0,
                    "spec_hash": "abc123",
                }
            )
    return pd.DataFrame(rows)


def make_curves(trials: pd.DataFrame, n_points: int = 5) -> pd.DataFrame:
    """Loss curves decaying to each trial's final loss."""
    steps = np.linspace(STEPS / n_points, STEPS, n_points).astype(int)
    parts = [
        pd.DataFrame(
            {
                "trial_id": t.trial_id,
                "step": steps,
                "tokens": steps * 2048,
                "train_loss": t.train_loss + 2.0 * (1 - steps / STEPS),
                "val_loss": t.val_loss + 2.0 * (1 - steps / STEPS),
            }
        )
        for t in trials.itertuples()
    ]
    return pd.concat(parts, ignore_index=True)


def write_sweep(
    sweep_dir: Path, trials: pd.DataFrame, base: dict | None = None, curves: bool = True
) -> Path:
    """A results folder: trials.parquet, curves.parquet and (with ``base``) spec.yaml."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    trials.to_parquet(sweep_dir / "trials.parquet")
    if curves:
        make_curves(trials).to_parquet(sweep_dir / "curves.parquet")
    if base is not None:
        lines = [f"name: {sweep_dir.name}", "base:"] + [f"  {k}: {v}" for k, v in base.items()]
        (sweep_dir / "spec.yaml").write_text("\n".join(lines) + "\n")
    return sweep_dir
