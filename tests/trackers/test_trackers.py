"""Trackers without Ray: the spec's log: key, --log with a tracker not installed, each
tracker's run read back, and how trials and targets become tracked runs."""

from __future__ import annotations

import dataclasses
import sys
from types import SimpleNamespace

import pytest
import yaml

from hptransfer.cli.main import main
from hptransfer.errors import BackendUnavailableError, ConfigError
from hptransfer.runtime.cluster import configure_env
from hptransfer.sweep import parse_spec
from hptransfer.sweep.trials import Job
from hptransfer.trackers import Tracker, parse_trackers, with_flags
from hptransfer.trackers.backends import Experiment, TrackedRun
from hptransfer.trackers.targets import ProgressFollower, entries
from tests.conftest import tiny_gpt_run
from tests.sweep.conftest import tiny_spec
from tests.trackers.readback import mlflow_runs, tensorboard_runs, wandb_runs
from tests.transfer.fitted_sweep import write_sweep

# -- the spec's log: key and --log ---------------------------------------------------------


def test_log_key_takes_names_lists_and_settings() -> None:
    assert parse_trackers("mlflow") == (Tracker("mlflow"),)
    assert parse_trackers(["wandb", {"tensorboard": {"dir": "tb"}}]) == (
        Tracker("wandb"),
        Tracker("tensorboard", (("dir", "tb"),)),
    )
    mlflow, wandb = parse_trackers({"mlflow": {"tracking_uri": "m.db"}, "wandb": {"project": "p"}})
    assert (mlflow.setting("tracking_uri"), wandb.setting("project")) == ("m.db", "p")
    # --log adds trackers; one the spec names keeps the spec's settings
    spec = parse_trackers({"mlflow": {"experiment": "e"}})
    assert with_flags(spec, ["tensorboard", "mlflow"]) == (*spec, Tracker("tensorboard"))


def test_the_log_key_is_not_part_of_the_sweeps_hash() -> None:
    plain = parse_spec(tiny_spec())
    logged = parse_spec(tiny_spec(log=[{"mlflow": {"tracking_uri": "sqlite:///m.db"}}]))
    assert logged.hash == plain.hash
    assert logged.log == (Tracker("mlflow", (("tracking_uri", "sqlite:///m.db"),)),)
    assert parse_spec(yaml.safe_load(logged.to_yaml())).log == logged.log  # spec.yaml keeps it


@pytest.mark.parametrize(
    ("log", "message"),
    [
        ("mlfow", r"log: unknown tracker 'mlfow' \(did you mean 'mlflow'\?\)"),
        (["wandb", {"tensorbord": {}}], r"log\[1\]: unknown tracker 'tensorbord' \(did you"),
        ({"wandb": {"projet": "p"}}, r"log\.wandb\.projet: unknown setting \(did you"),
        ([{"tensorboard": {"dir": 3}}], r"log\[0\]\.tensorboard\.dir: expected a string"),
        ({"tensorboard": "tb"}, r"log\.tensorboard: expected a mapping"),
        (["wandb", "wandb"], "log: names a tracker twice"),
        (3, "log: expected a tracker name or a list"),
    ],
)
def test_a_bad_log_key_names_the_file_and_key(log, message) -> None:
    with pytest.raises(ConfigError, match=rf"^x\.yaml: {message}"):
        parse_spec(tiny_spec(log=log), source="x.yaml")


@pytest.mark.parametrize(("tracker", "module"), [("wandb", "wandb"), ("mlflow", "mlflow")])
def test_log_with_a_tracker_not_installed_is_one_line_exit_2(
    tracker, module, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import wandb` raises ImportError
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec()))
    results = tmp_path / "results"
    code = main(["sweep", str(spec), "--results", str(results), "--log", tracker])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"--log {tracker} needs {module}" in err
    assert f"pip install 'hptransfer[{tracker}]'" in err
    assert not results.exists()  # nothing started, nothing written
    sweep = write_sweep(tmp_path / "fitted")
    code = main(["transfer", "--from", str(sweep), "--to", "width=32", "--log", tracker])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "pip install" in err, err
    assert not (sweep / "transfer.parquet").exists()


def test_an_unknown_log_flag_is_one_line_exit_2(tmp_path, capsys) -> None:
    assert main(["sweep", str(tmp_path / "x.yaml"), "--log", "neptune"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'neptune'" in err


# -- each tracker: a run's config and curve, read back ------------------------------------

CONFIG = {"parameterization": "supar", "width": 64, "lr": 0.0078125, "run_key": "abc123"}
CURVE = [(5, {"val_loss": 3.5, "train_loss": 3.6}), (10, {"val_loss": 3.25, "train_loss": 3.3})]


def _log_one_run(tracker: Tracker) -> None:
    experiment = Experiment([tracker], "tiny")
    run = experiment.start("t0-s0", CONFIG, kind="trial")
    run.log(CURVE)
    run.close()


def _assert_read_back(logged: dict) -> None:
    run = logged["t0-s0"]
    assert str(run.config["parameterization"]) == "supar"
    assert float(run.config["lr"]) == 0.0078125 and str(run.config["run_key"]) == "abc123"
    assert run.steps("val_loss") == [5, 10] and run.last("val_loss") == 3.25


def test_wandb_offline_run_reads_back(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    _log_one_run(Tracker("wandb", (("dir", str(tmp_path)),)))
    _assert_read_back(wandb_runs(tmp_path))


def test_mlflow_run_in_a_sqlite_store_reads_back(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    _log_one_run(Tracker("mlflow", (("tracking_uri", uri),)))
    logged = mlflow_runs(uri, "tiny")
    _assert_read_back(logged)
    assert logged["t0-s0"].config["status"] == "FINISHED"


def test_tensorboard_event_files_read_back(tmp_path) -> None:
    _log_one_run(Tracker("tensorboard", (("dir", str(tmp_path)),)))
    _assert_read_back(tensorboard_runs(tmp_path / "tiny"))


# -- tracked runs: steps once and in order, a failing tracker dropped ---------------------


class _Handle:
    def __init__(self, fail: bool = False) -> None:
        self.logged: list = []
        self.fail = fail
        self.closed: list[bool] = []

    def log(self, entries) -> None:
        if self.fail:
            raise OSError("server gone")
        self.logged += entries

    def close(self, failed: bool) -> None:
        self.closed.append(failed)


def test_a_tracked_run_logs_each_step_once_and_drops_a_failing_tracker(caplog) -> None:
    good, bad = _Handle(), _Handle(fail=True)
    run = TrackedRun({"good": good, "bad": bad})
    run.log([(5, {"val_loss": 3.0}), (5, {"loss": 2.9}), (10, {"val_loss": float("nan")})])
    run.log([(5, {"val_loss": 9.0}), (15, {"val_loss": 2.5})])  # a retry repeats step 5
    run.close(failed=False)
    run.close(failed=True)  # once only
    assert good.logged == [(5, {"val_loss": 3.0, "loss": 2.9}), (10, {}), (15, {"val_loss": 2.5})]
    assert good.closed == [False] and bad.closed == []
    assert "bad: log failed (server gone); not logging to it any more" in caplog.text


# -- trials and targets as tracked runs ---------------------------------------------------


class _Recording:
    """An Experiment that records what it is given."""

    def __init__(self) -> None:
        self.started: list[tuple[str, dict, str]] = []
        self.handle = _Handle()

    def start(self, name: str, config: dict, kind: str) -> TrackedRun:
        self.started.append((name, config, kind))
        return TrackedRun({"h": self.handle})

    def close(self) -> None:
        pass


def test_an_optuna_trials_seeds_follow_each_other_on_its_step_axis() -> None:
    runs = tuple(dataclasses.replace(tiny_gpt_run(), seed=seed) for seed in (0, 1))
    fit = SimpleNamespace(
        jobs=(Job("cellkey", runs),),
        searcher=object(),  # an Optuna search: the point's id is given when the trial ends
        recorder=SimpleNamespace(sweep="tiny", spec_hash="h"),
    )
    configure_env()  # before Ray's first import (an embedded Ray on loopback only)
    from hptransfer.sweep.tracking import TrackerCallback, describe_trial

    experiment = _Recording()
    callback = TrackerCallback(experiment, lambda trial: describe_trial(fit, trial))
    trial = SimpleNamespace(trial_id="t1", config={"lr": 0.02})
    callback.log_trial_start(trial)
    for run, step in ((0, 5), (1, 3), (1, 5)):
        callback.log_trial_result(0, trial, {"run": run, "step": step, "val_loss": 3.0 - step})
    callback.log_trial_end(trial, failed=True)
    [(name, config, kind)] = experiment.started
    assert (name, kind) == ("cellkey-t1", "trial")
    assert config["lr"] == 0.02 and config["seed"] == "0,1" and "trial_id" not in config
    assert [step for step, _ in experiment.handle.logged] == [5, 8, 10]  # run 1 from step 5
    assert experiment.handle.closed == [True]


def test_a_targets_progress_records_become_its_curve_and_step_losses() -> None:
    point = {"step": 10, "tokens": 320, "train_loss": 3.1, "val_loss": 3.2}
    start = {
        "first_step": 6,
        "curve": [{"step": 5, "tokens": 160, "train_loss": 3.4, "val_loss": 3.5}],
    }
    step = {
        "step": 10,
        "loss": 3.0,
        "elapsed_s": 1.0,
        "tokens_per_s": 99.0,
        "eta_s": 0,
        "point": point,
    }
    assert entries(start) == [(5, {"train_loss": 3.4, "val_loss": 3.5, "tokens": 160})]
    assert entries(step) == [
        (10, {"loss": 3.0, "tokens_per_s": 99.0, "train_loss": 3.1, "val_loss": 3.2, "tokens": 320})
    ]
    handle = _Handle()
    follower = ProgressFollower(TrackedRun({"h": handle}))
    follower(start)
    follower(step)
    assert handle.logged == []  # batched
    follower.end(failed=False)
    assert [s for s, _ in handle.logged] == [5, 10] and handle.closed == [False]
    ProgressFollower(None)(step)  # no trackers: nothing to do


def test_a_tracker_that_cannot_open_fails_in_one_line(tmp_path) -> None:
    (tmp_path / "file").write_text("")
    tracker = Tracker("tensorboard", (("dir", str(tmp_path / "file")),))
    with pytest.raises(BackendUnavailableError, match=r"^--log tensorboard: .*Not a directory"):
        Experiment([tracker], "tiny")


def test_a_tracker_that_cannot_start_a_run_is_dropped_after_one_warning(caplog) -> None:
    class Refusing:
        name = "wandb"
        tries = 0

        def start(self, name, config, kind):
            Refusing.tries += 1
            raise RuntimeError("api_key not configured (no-tty)")

    experiment = Experiment([], "tiny")
    experiment.backends.append(Refusing())
    for name in ("a", "b"):
        experiment.start(name, CONFIG, kind="trial").log(CURVE)
    assert Refusing.tries == 1 and caplog.text.count("api_key not configured") == 1
