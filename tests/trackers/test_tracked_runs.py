"""A sweep on Ray Tune and a transfer's target on Ray Train, each logged to W&B (offline),
MLflow (a SQLite store) and TensorBoard at once, every tracker read back against the store."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hptransfer.cli.main import main
from hptransfer.store.folder import TRANSFER_CURVES_FILE, TRANSFER_FILE
from tests.sweep.conftest import tiny_spec
from tests.trackers.readback import Logged, mlflow_runs, tensorboard_runs, wandb_runs
from tests.transfer.fitted_sweep import write_sweep


@pytest.fixture
def root(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short folder (Ray's socket paths), W&B offline in it."""
    folder = Path(tempfile.mkdtemp(prefix="hpt-trk-", dir="/tmp"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _every_tracker(root: Path, experiment: str) -> dict[str, dict[str, Logged]]:
    return {
        "wandb": wandb_runs(root / "wandb-dir"),
        "mlflow": mlflow_runs(f"sqlite:///{root}/mlflow.db", experiment),
        "tensorboard": tensorboard_runs(root / "tensorboard" / experiment),
    }


def _assert_matches_the_store(logged: Logged, row: pd.Series, curve: pd.DataFrame) -> None:
    for key in ("parameterization", "run_key", "trial_id"):
        assert str(logged.config[key]) == row[key]
    assert float(logged.config["lr"]) == row["lr"] and int(logged.config["width"]) == row["width"]
    assert logged.steps("val_loss") == curve["step"].tolist()
    assert logged.last("val_loss") == pytest.approx(curve["val_loss"].iloc[-1], rel=1e-6)


def test_a_sweeps_trials_reach_every_tracker(root: Path, capsys) -> None:
    log = [
        {"wandb": {"dir": str(root / "wandb-dir"), "project": "tests"}},
        {"mlflow": {"tracking_uri": f"sqlite:///{root}/mlflow.db"}},
        {"tensorboard": {"dir": str(root / "tensorboard")}},
    ]
    spec = root / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(seeds=[0], log=log)))
    assert main(["sweep", str(spec), "--results", str(root / "results")]) == 0
    out = capsys.readouterr().out
    assert "wandb" not in out.lower() and "mlflow" not in out.lower()  # quiet
    trials = pd.read_parquet(root / "results/tiny/trials.parquet").set_index("trial_id")
    curves = pd.read_parquet(root / "results/tiny/curves.parquet")
    for tracker, runs in _every_tracker(root, "tiny").items():
        assert sorted(runs) == sorted(trials.index), tracker
        for tid, logged in runs.items():
            row = trials.loc[tid].copy()
            row["trial_id"] = tid
            _assert_matches_the_store(logged, row, curves[curves["trial_id"] == tid])


def test_a_ray_train_target_reaches_every_tracker(root: Path, monkeypatch, capsys) -> None:
    """Settings from the environment and the defaults: --log alone."""
    sweep = write_sweep(root / "results", seeds=(0,))
    monkeypatch.setenv("WANDB_DIR", str(root / "wandb-dir"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlflow.db")
    monkeypatch.chdir(root)  # TensorBoard's default: ./tensorboard
    target = ["--to", "width=32,density=0.25", "--workers", "1", "-p", "supar"]
    trackers = ["--log", "wandb", "--log", "mlflow", "--log", "tensorboard"]
    assert main(["transfer", "--from", str(sweep), *target, *trackers]) == 0, capsys.readouterr()
    [row] = [r for _, r in pd.read_parquet(sweep / TRANSFER_FILE).iterrows()]
    curve = pd.read_parquet(sweep / TRANSFER_CURVES_FILE)
    for tracker, runs in _every_tracker(root, "tiny").items():
        logged = runs[row["trial_id"]]
        _assert_matches_the_store(logged, row, curve)
        assert int(logged.config["target_workers"]) == 1, tracker
        assert logged.steps("loss") == list(range(1, row["steps"] + 1)), tracker  # every step
