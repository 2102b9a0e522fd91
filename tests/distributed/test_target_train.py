"""A target on Ray Train (2 workers, DDP and FSDP2) trains what one process trains; masks
are the same on every rank and stay zero in every shard; checkpoints, artifact, resume."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest

import hptransfer
from hptransfer.data import load_dataset
from hptransfer.distributed.checkpoint import (
    STATE_JSON,
    STATE_TENSORS,
    checkpoint_folders,
    read_checkpoint,
)
from hptransfer.distributed.loop import train_target
from hptransfer.distributed.progress import step_losses
from hptransfer.distributed.run import RESULT_FILE, run_target
from hptransfer.errors import ConfigError, ResultsError
from hptransfer.models import sparse_layers
from hptransfer.runtime.resources import TargetConfig
from hptransfer.train import complete_run, evaluate, val_batches
from tests.distributed.targetkit import target_run, train_on_ray

pytest_plugins = ("tests.distributed.targetkit",)  # its fixtures

REL = 1e-5


def _relative(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b) == 20
    return max(abs(x - y) / abs(y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_workers_agree_with_one_step_by_step(strategy, request, reference):
    result = request.getfixturevalue(strategy)
    assert _relative(result.losses, reference["losses"]) <= REL
    assert result.metrics["val_loss"] == pytest.approx(reference["metrics"]["val_loss"], rel=REL)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_masks_are_equal_on_every_rank_and_zero_in_every_shard(strategy, request, reference):
    ranks = request.getfixturevalue(strategy).metrics["masks"]["ranks"]
    (one,) = reference["metrics"]["masks"]["ranks"]
    assert len(ranks) == 2
    assert {rank["checksum"] for rank in ranks} == {one["checksum"]}
    assert all(rank["masked_max_abs"] == 0.0 and rank["checked"] > 0 for rank in ranks)
    # DDP: each rank holds every weight; FSDP2: the shards together hold each weight once.
    expected = [one["checked"]] * 2 if strategy == "ddp" else None
    checked = [rank["checked"] for rank in ranks]
    assert checked == expected if expected else sum(checked) == one["checked"]


def test_checkpoints_keep_the_last_two_and_the_run_is_not_trained_again(ddp):
    steps = [path.name for path in checkpoint_folders(ddp.folder)]
    assert steps == ["checkpoint_000000015", "checkpoint_000000020"]
    state = read_checkpoint(ddp.folder / steps[-1], target_run())
    assert state.step == 20 and state.metrics["val_loss"] == ddp.metrics["val_loss"]
    again = run_target(target_run(), TargetConfig(workers=2), ddp.folder)  # no Ray: done
    assert again.metrics == ddp.metrics and [p["step"] for p in again.curve] == [10, 20]


def test_a_target_run_records_its_provenance(ddp):
    from hptransfer import provenance

    assert {name: ddp.metrics[name] for name in provenance.FIELDS} == provenance.run_fields("cpu")
    assert ddp.metrics["kernel"]


def test_load_model_gives_the_final_validation_loss(ddp):
    model = hptransfer.load_model(ddp.folder)
    run = complete_run(target_run(), load_dataset(target_run().data))
    val_loss = evaluate(model, val_batches(run, load_dataset(run.data), "cpu")).loss
    assert val_loss == pytest.approx(ddp.metrics["val_loss"], rel=1e-6)
    for layer in sparse_layers(model):
        assert layer.mask is not None and not layer.weight[~layer.mask].any()


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path, reference):
    states = []
    train_target(target_run(), TargetConfig(checkpoint_every=10), lambda s, m: states.append(s))
    records: list[dict] = []
    resumed, final = train_target(
        target_run(), TargetConfig(), lambda s, m: None, send=records.extend, state=states[0]
    )
    assert resumed["val_loss"] == reference["metrics"]["val_loss"]  # bit for bit
    assert final.curve == reference["curve"] and resumed["starts"] == [1, 11]
    assert records[0] == {"first_step": 11, "curve": reference["curve"][:1]}
    assert step_losses(records) == reference["losses"][10:]


def _copy_unfinished(ddp, tmp_root: Path) -> Path:
    folder = tmp_root / "copy"
    shutil.copytree(ddp.folder, folder)
    (folder / RESULT_FILE).unlink()
    return folder


def test_a_damaged_checkpoint_is_refused_before_ray_starts(ddp, short_root):
    folder = _copy_unfinished(ddp, short_root / "damaged")
    tensors = folder / "checkpoint_000000020" / STATE_TENSORS
    data = bytearray(tensors.read_bytes())
    data[-5] ^= 0xFF
    tensors.write_bytes(bytes(data))
    with pytest.raises(ResultsError, match=r"checkpoint_000000020 is damaged .*--restart"):
        run_target(target_run(), TargetConfig(workers=2), folder)
    assert tensors.read_bytes() == bytes(data)  # nothing replaced


def test_restart_moves_a_damaged_run_aside_and_trains_it_again(ddp, short_root):
    folder = _copy_unfinished(ddp, short_root / "restarted")
    tensors = folder / "checkpoint_000000020" / STATE_TENSORS
    damaged = tensors.read_bytes()[:-5] + b"\0" * 5
    tensors.write_bytes(damaged)
    target = TargetConfig(workers=2, checkpoint_every=5)
    again = train_on_ray(target_run(), target, folder, restart=True)
    (aside,) = folder.parent.glob("copy.replaced-*")
    assert (aside / "checkpoint_000000020" / STATE_TENSORS).read_bytes() == damaged
    assert again.losses == ddp.losses  # from step 1, as before
    assert again.metrics["val_loss"] == ddp.metrics["val_loss"]


def test_a_checkpoint_of_another_target_is_refused(ddp, short_root):
    folder = _copy_unfinished(ddp, short_root / "foreign")
    other = dataclasses.replace(target_run(), parameterization="sp")
    with pytest.raises(ResultsError, match=r"another run .*parameterization supar ≠ sp"):
        run_target(other, TargetConfig(workers=2), folder)
    wider = dataclasses.replace(target_run(), model=target_run().model.replace(width=64))
    with pytest.raises(ResultsError, match="width 32 ≠ 64"):
        run_target(wider, TargetConfig(workers=2), folder)


def test_a_checkpoint_of_another_format_is_refused(ddp, short_root):
    folder = _copy_unfinished(ddp, short_root / "old-format")
    meta = folder / "checkpoint_000000020" / STATE_JSON
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "format": 1}))
    with pytest.raises(ResultsError, match=r"checkpoint_000000020 has format 1, this version"):
        run_target(target_run(), TargetConfig(workers=2), folder)


def test_bad_targets_are_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"need 64 CPUs but the embedded Ray has \d+"):
        run_target(target_run(), TargetConfig(workers=64), tmp_path / "t")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot write the target's checkpoints to"):
        run_target(target_run(), TargetConfig(), blocker / "t")
    with pytest.raises(ConfigError, match="fsdp with 1 worker shards nothing"):
        TargetConfig(strategy="fsdp")
    with pytest.raises(ConfigError, match="divisible by the workers"):
        TargetConfig(workers=3).micro_batches(8)


def test_micro_batches_accumulate_to_the_full_batch(reference):
    records: list[dict] = []
    train_target(target_run(), TargetConfig(micro_batch=2), lambda s, m: None, send=records.extend)
    assert _relative(step_losses(records), reference["losses"]) <= REL


def test_bf16_on_cpu_ends_within_two_percent_of_fp32():
    run = target_run(steps=50)
    run = dataclasses.replace(run, train=dataclasses.replace(run.train, eval_every=0))
    losses = {}
    for precision in ("fp32", "bf16"):
        target = TargetConfig(precision=precision)
        metrics, _ = train_target(run, target, lambda s, m: None)
        losses[precision] = metrics["val_loss"]
    assert math.isfinite(losses["bf16"]) and losses["bf16"] != losses["fp32"]
    assert abs(losses["bf16"] - losses["fp32"]) / losses["fp32"] <= 0.02


def test_precision_auto_is_fp32_on_cpu_and_bf16_on_cuda():
    assert TargetConfig().resolved_precision("cpu") == "fp32"
    assert TargetConfig().resolved_precision("cuda") == "bf16"
    assert TargetConfig(precision="bf16").resolved_precision("cpu") == "bf16"
    assert not {"steps", "batch_size"} & {f.name for f in dataclasses.fields(TargetConfig)}


@pytest.mark.slow  # a cold torch.compile takes 1-4 minutes on a busy 2-core box
def test_compile_keeps_the_masks_and_the_per_group_hps(reference):
    records: list[dict] = []
    compiled = TargetConfig(compile=True)
    metrics, _ = train_target(target_run(), compiled, lambda s, m: None, send=records.extend)
    assert _relative(step_losses(records), reference["losses"]) <= REL
    (rank,) = metrics["masks"]["ranks"]
    assert rank["masked_max_abs"] == 0.0 and rank["checked"] > 0
