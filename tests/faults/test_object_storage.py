"""Results in object storage: a sweep into ``s3://bucket/prefix`` on a local S3-compatible
server (moto, on 127.0.0.1, started here; no network) stores every run once, equal to the
same sweep on a local disk; killed and resumed it still holds every run once; ``fit``,
``plot``, ``merge``, ``transfer``, the notebook's helper and ``load_model`` read it there;
the writer lease is taken only from a dead or stale holder; a missing bucket, unreachable
storage and refused credentials are one line and exit 2, with nothing written."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from typing import Any

import faultkit
import pandas as pd
import pytest

from hptransfer.cli.main import main
from hptransfer.runtime.identity import point_id, trial_id
from hptransfer.store import ResultsStore, location
from hptransfer.sweep import parse_spec
from hptransfer.sweep.trials import grid_runs
from tests.faults.s3kit import BUCKET, objects, uri

NAME = faultkit.SPEC["name"]
PLANNED = {trial_id(point_id(run), run.seed) for run in grid_runs(parse_spec(faultkit.SPEC))}

pytest_plugins = ("tests.faults.s3kit",)  # the s3 fixture


def stored(results: str) -> pd.DataFrame:
    return ResultsStore(location(results) / NAME).read_trials()


def sweep(results: str, root, **kwargs: Any) -> subprocess.Popen:
    spec = faultkit.write_yaml(root / "spec.yaml", faultkit.SPEC)
    return faultkit.start(faultkit.cli("sweep", str(spec), "--results", results), **kwargs)


def test_a_sweep_in_object_storage_stores_every_run_once_as_on_disk(s3, root, reference):
    results = uri(s3, "whole")
    proc = sweep(results, root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=faultkit.SWEEP_TIMEOUT_S)
    assert proc.returncode == 0, err
    trials = stored(results)
    assert sorted(trials["trial_id"]) == sorted(PLANNED)  # each planned run, once
    pd.testing.assert_frame_equal(
        faultkit.comparable(trials), faultkit.comparable(reference["trials"])
    )
    names = {info.path.split(f"{NAME}/", 1)[1] for info in objects(s3, "whole")}
    assert {"trials.parquet", "curves.parquet", "spec.yaml"} <= names
    assert not any(name.startswith(("trials.parts/", "ray/")) for name in names)  # compacted
    assert not list(root.glob("s3*"))  # nothing written to a local folder named after it

    assert main(["fit", f"s3://{BUCKET}/whole/{NAME}{s3['query']}"]) == 0
    assert main(["plot", "--results", results]) == 0
    names = {info.path.split(f"{NAME}/", 1)[1] for info in objects(s3, "whole")}
    assert "fit.json" in names and any(name.startswith("plots/") for name in names)


@pytest.mark.slow  # a sweep killed, then resumed: about a minute on a busy box
def test_an_object_storage_sweep_killed_and_resumed_holds_every_run_once(s3, root):
    results = uri(s3, "killed")
    proc = sweep(results, root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        faultkit.wait_until(
            lambda: _rows(results) >= 3, proc, faultkit.SWEEP_TIMEOUT_S, "3 stored runs"
        )
        os.killpg(proc.pid, signal.SIGKILL)  # mid-sweep: runs in flight, no clean-up
    finally:
        faultkit.kill_tree(proc)
    before = stored(results)
    assert 3 <= len(before) < len(PLANNED) and before["trial_id"].is_unique
    resumed = sweep(results, root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = resumed.communicate(timeout=faultkit.SWEEP_TIMEOUT_S)
    assert resumed.returncode == 0, err  # the dead holder's lock did not block it
    trials = stored(results)
    assert sorted(trials["trial_id"]) == sorted(PLANNED)
    kept = trials.set_index("trial_id").loc[before["trial_id"], "finished_at"]
    assert kept.tolist() == before["finished_at"].tolist()  # stored runs: not trained again


def _rows(results: str) -> int:
    return len(stored(results)) if _exists(results) else 0


def _exists(results: str) -> bool:
    return (location(results) / NAME / "spec.yaml").is_file()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("sweep", "no bucket"),
        ("fit", "no bucket"),
        ("plot", "no bucket"),
        ("sweep", "unreachable"),
        ("sweep", "bad credentials"),
        ("fit", "bad credentials"),
    ],
)
def test_bad_storage_is_one_line_and_exit_2(command, problem, s3, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    where = uri(s3, "bad")
    if problem == "no bucket":
        where, expected = where.replace(BUCKET, "no-such-bucket"), "does not exist"
    elif problem == "unreachable":
        where = f"s3://{BUCKET}/x?endpoint_override=127.0.0.1:{_closed_port()}&scheme=http"
        expected = "unreachable"
    else:  # keys the server does not know (moto checks them once told to)
        import moto.settings

        monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
        expected = "credentials"
    spec = faultkit.write_yaml(tmp_path / "s.yaml", faultkit.SPEC)
    argv = ["sweep", str(spec)] if command == "sweep" else [command]
    started = time.monotonic()
    assert main([*argv, "--results", where]) == 2
    assert time.monotonic() - started < 30  # no minutes of retries
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hptransfer: error:") and expected in err
    assert [p.name for p in tmp_path.iterdir()] == ["s.yaml"]  # no local folder either
    monkeypatch.undo()
    assert objects(s3, "bad") == []  # nothing written


def test_load_model_reads_a_target_folder_from_object_storage(s3):
    import torch

    import hptransfer
    from hptransfer.data import load_dataset
    from hptransfer.distributed.artifact import write_artifact
    from hptransfer.models import build_model
    from hptransfer.train import complete_run
    from tests.conftest import tiny_gpt_run

    run = complete_run(tiny_gpt_run(), load_dataset(tiny_gpt_run().data))
    weights = build_model(run).state_dict()
    folder = uri(s3, "targets/t1")
    write_artifact(location(folder), run, weights, {"val_loss": 1.0})
    loaded = hptransfer.load_model(folder).state_dict()
    assert loaded.keys() == weights.keys()
    assert all(torch.equal(loaded[k], weights[k]) for k in weights)


def test_a_target_folder_is_moved_aside_in_object_storage(s3):
    """``--restart`` of a target in object storage: every object copied, then deleted."""
    from hptransfer.store.location import move

    folder = location(uri(s3, "moved/t1"))
    (folder / "checkpoint_000000005" / "state.json").write_text("{}")
    (folder / "result.json").write_text("[]")
    move(folder, folder.with_name("t1.replaced"))
    names = sorted(info.path.split("moved/", 1)[1] for info in objects(s3, "moved"))
    assert names == ["t1.replaced/checkpoint_000000005/state.json", "t1.replaced/result.json"]
    assert (folder.with_name("t1.replaced") / "result.json").read_text() == "[]"


def test_a_sweep_copied_to_object_storage_is_found_read_and_merged_there(s3, reference):
    """The notebook's helper finds the latest sweep under a URI; analysis reads it as it
    reads the local folder; merge writes a study there."""
    import pyarrow.fs as pafs

    from hptransfer.analysis.results import find_sweep, read_trials

    pafs.copy_files(
        str(reference["dir"]),
        f"{BUCKET}/copied/{NAME}",
        source_filesystem=pafs.LocalFileSystem(),
        destination_filesystem=s3["fs"],
    )
    sweep = find_sweep(None, uri(s3, "copied"))
    assert str(sweep) == f"s3://{BUCKET}/copied/{NAME}"
    pd.testing.assert_frame_equal(read_trials(sweep), read_trials(reference["dir"]))
    assert main(["merge", str(reference["dir"]), "--into", uri(s3, "study")]) == 0
    assert len(read_trials(location(uri(s3, "study")))) == len(PLANNED)


@pytest.mark.parametrize(
    ("holder", "taken"),
    [
        ({"host": socket.gethostname(), "pid": os.getpid()}, False),  # alive here
        ({"host": socket.gethostname(), "pid": 2**22 + 1}, True),  # gone (pid above pid_max)
        ({"host": "elsewhere", "pid": 1, "renewed_ago": 0}, False),  # renewed just now
        ({"host": "elsewhere", "pid": 1, "renewed_ago": 3600}, True),  # stale
    ],
)
def test_the_writer_lease_is_taken_only_from_a_dead_or_stale_holder(s3, holder, taken):
    import json

    from hptransfer.errors import ResultsError

    holder = dict(holder)
    ago = holder.pop("renewed_ago", None)
    store = ResultsStore(location(uri(s3, f"lease-{holder['pid']}-{ago}")))
    lock = store.directory / "sweep.lock"
    renewed = {} if ago is None else {"renewed": time.time() - ago}
    lock.write_text(json.dumps({"token": "theirs", "since": "then", **holder, **renewed}))
    if taken:
        with store.lock():
            assert json.loads(lock.read_text())["pid"] == os.getpid()
        assert not lock.exists()  # released
    else:
        with pytest.raises(ResultsError, match="in use by pid"), store.lock():
            pass
        assert json.loads(lock.read_text())["token"] == "theirs"  # left as it was


@pytest.fixture(scope="module")
def fitted(s3) -> str:
    """A fitted tiny sweep (synthetic losses, no training) written straight into the bucket."""
    root = uri(s3, "fitted")
    return f"s3://{BUCKET}/fitted/{faultkit.write_fitted_sweep(location(root)).name}{s3['query']}"


def test_transfer_plans_from_a_sweep_in_object_storage(fitted, capsys):
    assert main(["transfer", "--from", fitted, "--to", "width=32", "--dry-run"]) == 0
    assert "dry run: nothing trained" in capsys.readouterr().out


@pytest.mark.slow  # Ray and two training runs
def test_transfer_trains_into_object_storage(fitted, capsys):
    from hptransfer.analysis.results import read_curves, read_table

    target = ["--to", "width=32,density=0.25", "--compare", "sp"]
    assert main(["transfer", "--from", fitted, *target]) == 0
    runs = read_table(location(fitted) / "transfer.parquet", ["trial_id"])
    assert sorted(runs["parameterization"]) == ["sp", "supar"] and runs["trial_id"].is_unique
    assert set(read_curves(location(fitted), "transfer_curves.parquet")["trial_id"]) == set(
        runs["trial_id"]
    )
    assert main(["transfer", "--from", fitted, *target]) == 0  # stored: not trained again
    assert len(read_table(location(fitted) / "transfer.parquet", ["trial_id"])) == 2
