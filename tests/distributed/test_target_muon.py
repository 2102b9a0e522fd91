"""Targets with ``train.optimizer: muon``: the checkpoints hold Muon's momentum beside AdamW's
moments, so a resumed target ends bit for bit where an uninterrupted one ends; 2 DDP workers on
Ray Train train what one process trains."""

from __future__ import annotations

from pathlib import Path

import pytest

from hptransfer.distributed.checkpoint import checkpoint_name, read_checkpoint, write_checkpoint
from hptransfer.distributed.loop import train_target
from hptransfer.distributed.progress import step_losses
from hptransfer.runtime.resources import TargetConfig
from tests.distributed.targetkit import target_run, train_on_ray

pytest_plugins = ("tests.distributed.targetkit",)  # its fixtures

# torch's Muon runs Newton–Schulz in bf16: an all-reduced gradient that differs from one
# process's in its last bit can round to another bf16 value (2^-8 apart), so two workers agree
# with one process less closely than under AdamW (1e-5); resumes stay bit for bit.
REL = 1e-4


@pytest.fixture(scope="module")
def muon_reference() -> dict:
    """The Muon target in this process, one worker, no Ray."""
    records: list[dict] = []
    metrics, final = train_target(
        target_run(optimizer="muon"), TargetConfig(), lambda state, m: None, send=records.extend
    )
    return {"metrics": metrics, "losses": step_losses(records), "curve": final.curve}


def test_muon_trains_another_target_than_adamw(muon_reference, reference):
    assert muon_reference["losses"][1:] != reference["losses"][1:]


def test_a_checkpoint_on_disk_resumes_muon_bit_for_bit(tmp_path: Path, muon_reference):
    """Through safetensors and state.json: Muon's groups (ns_steps, nesterov, …) and
    momentum buffers, AdamW's moments, the schedule and the RNG."""
    run, states = target_run(optimizer="muon"), []
    train_target(run, TargetConfig(checkpoint_every=10), lambda s, m: states.append(s))
    write_checkpoint(tmp_path / checkpoint_name(10), states[0], run, run)
    state = read_checkpoint(tmp_path / checkpoint_name(10), run)
    fields = {field for values in state.optimizer["state"].values() for field in values}
    assert {"momentum_buffer", "exp_avg", "exp_avg_sq"} <= fields
    assert "muon" in {group.get("optimizer") for group in state.optimizer["param_groups"]}
    records: list[dict] = []
    resumed, final = train_target(
        run, TargetConfig(), lambda s, m: None, send=records.extend, state=state
    )
    assert resumed["val_loss"] == muon_reference["metrics"]["val_loss"]  # bit for bit
    assert final.curve == muon_reference["curve"] and resumed["starts"] == [1, 11]
    assert step_losses(records) == muon_reference["losses"][10:]


def test_two_ddp_workers_train_what_one_process_trains(short_root: Path, muon_reference):
    """Ray Train's checkpoints (torch.distributed.checkpoint's optimizer state) hold Muon's
    momentum too; the driver-killed resume: test_target_faults.py's Muon case."""
    run, target = target_run(optimizer="muon"), TargetConfig(workers=2, checkpoint_every=5)
    trained = train_on_ray(run, target, short_root / "muon-ddp")
    assert (
        max(
            abs(a - b) / abs(b)
            for a, b in zip(trained.losses, muon_reference["losses"], strict=True)
        )
        <= REL
    )
    state = read_checkpoint(trained.folder / checkpoint_name(20), run)
    fields = {field for values in state.optimizer["state"].values() for field in values}
    assert {"momentum_buffer", "exp_avg", "exp_avg_sq"} <= fields
