"""``hptransfer transfer --workers N``: targets on Ray Train into the transfer tables, on a
disk and in object storage (a moto S3 server on 127.0.0.1), the two bit for bit equal."""

from __future__ import annotations

import contextlib
import io
import re
import socket
from pathlib import Path

import pandas as pd
import pytest
import torch

import hptransfer
from hptransfer.analysis.plots import TRANSFER_CURVES_FILE, TRANSFER_FILE
from hptransfer.cli.main import main
from hptransfer.data import load_dataset
from hptransfer.distributed.artifact import CONFIG_FILE, WEIGHTS_FILE, load_run
from hptransfer.distributed.checkpoint import checkpoint_folders
from hptransfer.distributed.run import RESULT_FILE
from hptransfer.store import location, read_frame
from hptransfer.store.folder import TARGETS_DIR
from hptransfer.train import complete_run, evaluate, val_batches
from tests.faults.s3kit import BUCKET, objects, uri
from tests.transfer.fitted_sweep import write_sweep

TARGET = ["--to", "width=32,density=0.25", "--workers", "2"]

pytest_plugins = ("tests.distributed.targetkit", "tests.faults.s3kit")  # their fixtures


def transfer(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["transfer", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def sweep(short_root: Path) -> Path:
    return write_sweep(short_root / "cli")


def test_dry_run_estimates_the_workers_together(sweep: Path, capsys) -> None:
    code, one, _ = transfer(capsys, "--from", str(sweep), "--to", "width=512", "--dry-run")
    assert code == 0
    code, out, err = transfer(
        capsys, "--from", str(sweep), "--to", "width=512", "--workers", "2", "--strategy",
        "fsdp", "--dry-run",
    )  # fmt: skip
    assert code == 0, err
    assert "on Ray Train, 2 worker(s), fsdp, fp32; memory of all workers together" in out
    assert re.search(r"memory +≈ [\d.]+ GiB \(weights [\d.]+, .*gathered", out)
    # half the FLOPs per worker (times vary with the load the GEMM rate is measured under)
    flops = re.findall(r"/step \(([\d.]+ \w?FLOP) at", one + out)
    assert len(flops) == 2
    (whole, whole_unit), (half, half_unit) = (f.split() for f in flops)
    assert half_unit == whole_unit and float(half) == pytest.approx(float(whole) / 2, rel=1e-3)


@pytest.fixture(scope="module")
def trained(sweep: Path) -> str:
    """The target trained into the local sweep folder: what the command printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["transfer", "--from", str(sweep), *TARGET]) == 0
    return out.getvalue()


def test_a_target_trains_on_ray_train_into_the_transfer_tables(sweep, trained, capsys):
    out = trained
    runs = pd.read_parquet(sweep / TRANSFER_FILE)
    assert runs["status"].tolist() == ["completed"] and runs["val_loss"].notna().all()
    curves = pd.read_parquet(sweep / TRANSFER_CURVES_FILE)
    assert curves["step"].tolist() == [5, 10]
    folder = sweep / TARGETS_DIR / runs["trial_id"].iloc[0]
    assert (folder / WEIGHTS_FILE).is_file() and (folder / CONFIG_FILE).is_file()
    assert hptransfer.load_model(folder).cfg.width == 32
    code, again, _ = transfer(capsys, "--from", str(sweep), *TARGET)  # stored: not again
    assert code == 0 and again.splitlines()[-2:] == out.splitlines()[-2:]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "64"], r"need 64 CPUs but the embedded Ray has \d+"),
        (["--workers", "1", "--strategy", "fsdp"], "fsdp with 1 worker shards nothing"),
        (["--workers", "2", "--micro-batch", "3"], "--micro-batch 3 must divide"),
        (["--workers", "2", "--batch-size", "5"], r"batch size \(5\) must be divisible by the"),
        (["--restart"], "--restart applies to targets on Ray Train"),
        (["--workers", "0"], "target.workers must be a positive integer"),
        (["--workers", "2", "--gpus", "1"], "need 2 GPUs but this machine has 0"),
    ],
)
def test_bad_target_input_is_one_line_exit_2(sweep: Path, capsys, args, message) -> None:
    code, out, err = transfer(capsys, "--from", str(sweep), "--to", "width=32", *args)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and re.search(message, err), err


def test_a_target_trains_into_object_storage_as_on_disk(sweep, trained, s3, capsys) -> None:
    name = write_sweep(location(uri(s3, "cli"))).name
    remote = f"s3://{BUCKET}/cli/{name}{s3['query']}"
    code, out, err = transfer(capsys, "--from", remote, *TARGET)
    assert code == 0, err
    runs = read_frame(location(remote) / TRANSFER_FILE)
    assert runs["status"].tolist() == ["completed"]
    local = pd.read_parquet(sweep / TRANSFER_FILE)
    assert runs["val_loss"].tolist() == local["val_loss"].tolist()  # bit for bit
    pd.testing.assert_frame_equal(
        read_frame(location(remote) / TRANSFER_CURVES_FILE),
        pd.read_parquet(sweep / TRANSFER_CURVES_FILE),
    )
    tid = runs["trial_id"].iloc[0]
    folder = location(remote) / TARGETS_DIR / tid
    assert [c.name for c in checkpoint_folders(folder)] == ["checkpoint_000000010"]
    assert (folder / RESULT_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()
    model = hptransfer.load_model(f"s3://{BUCKET}/cli/{name}/{TARGETS_DIR}/{tid}{s3['query']}")
    run = complete_run(load_run(folder), load_dataset(load_run(folder).data))
    batches = val_batches(run, load_dataset(run.data), "cpu")
    assert evaluate(model, batches).loss == pytest.approx(runs["val_loss"].iloc[0], rel=1e-6)
    last = f"s3://{BUCKET}/cli/{name}/{TARGETS_DIR}/{tid}/checkpoint_000000010{s3['query']}"
    with torch.no_grad():  # the last checkpoint, read from object storage, is the final model
        assert torch.equal(hptransfer.load_model(last)(batches[0][0]), model(batches[0][0]))
    stored = len(objects(s3, "cli"))
    code, again, _ = transfer(capsys, "--results", uri(s3, "cli"), *TARGET)  # stored: not again
    assert code == 0 and again.splitlines()[-2:] == out.splitlines()[-2:]
    assert len(objects(s3, "cli")) == stored


@pytest.mark.parametrize("problem", ["read-only", "unreachable"])
def test_unwritable_or_unreachable_storage_for_targets_is_one_line_exit_2(
    problem, s3, capsys, monkeypatch
) -> None:
    name = write_sweep(location(uri(s3, f"bad-{problem}"))).name
    remote = f"s3://{BUCKET}/bad-{problem}/{name}{s3['query']}"
    before = [info.path for info in objects(s3, f"bad-{problem}")]
    if problem == "read-only":  # credentials that may list and read the bucket, not write it
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", _read_only_key(s3, monkeypatch))
        expected = "access denied: check the credentials"
    else:  # nothing listens on that port
        closed = f"?endpoint_override=127.0.0.1:{_closed_port()}&scheme=http"
        remote = remote.replace(s3["query"], closed)
        expected = "storage unreachable"
    code, out, err = transfer(capsys, "--from", remote, "--to", "width=32", "--workers", "1")
    assert (code, out) == (2, "")
    # Whichever call the server refuses first (moto versions differ in what a read-only
    # policy allows), the one line names the store and the cause.
    where = re.escape(f"s3://{BUCKET}")
    assert err.count("\n") == 1 and re.match(f"hptransfer: error: .*{where}.*{expected}", err), err
    monkeypatch.undo()
    assert [info.path for info in objects(s3, f"bad-{problem}")] == before  # nothing written


def _read_only_key(s3, monkeypatch) -> str:
    """An access key of a new user allowed only to read and list S3; the server checks keys
    from now on (moto's IAM). The secret goes into the environment."""
    import json

    import boto3
    import moto.settings

    host, port = s3["server"].get_host_and_port()
    iam = boto3.client("iam", endpoint_url=f"http://{host}:{port}")
    user = f"reader-{len(iam.list_users()['Users'])}"
    iam.create_user(UserName=user)
    reads = ["s3:Get*", "s3:List*", "s3:Head*"]  # moto ≥ 5.2.6 checks s3:HeadObject
    policy = {"Effect": "Allow", "Action": reads, "Resource": "*"}
    iam.put_user_policy(
        UserName=user,
        PolicyName="read-only",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [policy]}),
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    return key["AccessKeyId"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
