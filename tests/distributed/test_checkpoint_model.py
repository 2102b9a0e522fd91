"""``hptransfer.load_model`` on a target's checkpoint folders: the model the live run had at
that checkpoint's step (its multipliers, its masks), on a disk; bad folders in one line.
(Object storage: ``tests/distributed/test_target_cli.py``.)"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

import hptransfer
from hptransfer.config import RunConfig
from hptransfer.data import load_dataset
from hptransfer.distributed import loop as target_loop
from hptransfer.distributed.artifact import CONFIG_FILE
from hptransfer.distributed.checkpoint import (
    STATE_JSON,
    STATE_TENSORS,
    TrainingState,
    checkpoint_name,
    write_checkpoint,
)
from hptransfer.errors import ResultsError
from hptransfer.models import build_model
from hptransfer.param import BaseHPs, BaseShape
from hptransfer.runtime.resources import TargetConfig
from hptransfer.train import complete_run, val_batches
from tests.distributed.targetkit import target_run

pytest_plugins = ("tests.distributed.targetkit",)  # its fixtures


def scaled_run() -> RunConfig:
    """The tiny target at twice its base width with α_in, α_out ≠ 1: multipliers that
    change the logits (density 1/2: m_ρ too)."""
    run = target_run()
    return dataclasses.replace(
        run, base=BaseShape(width=16), hps=BaseHPs(lr=2**-6, alpha_in=2.0, alpha_out=0.5)
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> dict:
    """A 20-step run in this process, checkpointed every 5 steps into a target's folder the
    way a Ray Train worker writes them, and the logits the live model gave at each."""
    run = scaled_run()
    complete = complete_run(run, load_dataset(run.data))
    tokens = val_batches(complete, load_dataset(run.data), "cpu")[0][0]
    folder = tmp_path_factory.mktemp("live") / "target"
    models: list[torch.nn.Module] = []
    logits: dict[int, torch.Tensor] = {}

    def build(*args, **kwargs):
        models.append(build_model(*args, **kwargs))
        return models[-1]

    def save(state: TrainingState | None, metrics: dict) -> None:
        with torch.no_grad():
            logits[state.step] = models[0](tokens)
        write_checkpoint(folder / checkpoint_name(state.step), state, run, complete)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(target_loop, "build_model", build)
        target_loop.train_target(run, TargetConfig(checkpoint_every=5), save)
    return {"folder": folder, "logits": logits, "tokens": tokens}


def _logits(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens)


def test_each_checkpoint_gives_the_live_models_logits_at_its_step(live) -> None:
    logits = live["logits"]
    assert sorted(logits) == [5, 10, 15, 20]
    assert not torch.allclose(logits[10], logits[15], rtol=1e-3)  # the steps tell apart
    for step, expected in logits.items():
        model = hptransfer.load_model(live["folder"] / checkpoint_name(step))
        assert torch.equal(_logits(model, live["tokens"]), expected), step  # bit for bit


def test_a_checkpoints_masks_are_its_own_not_drawn_again(live, tmp_path) -> None:
    """A checkpoint whose mask differs from what the mask seed draws loads with its own."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / checkpoint_name(10)
    shutil.copytree(live["folder"] / checkpoint_name(10), folder)
    tensors = load_file(folder / STATE_TENSORS)
    name = next(k for k in tensors if k.startswith("model/") and k.endswith(".mask"))
    drawn = tensors[name]
    other = drawn.flatten().roll(1).view_as(drawn)
    assert not torch.equal(other, drawn)
    weight = name.removesuffix("mask") + "weight"
    tensors.update({name: other, weight: tensors[weight] * other})
    save_file(tensors, folder / STATE_TENSORS)
    _rewrite_meta(folder, bytes=(folder / STATE_TENSORS).stat().st_size, sha256=_sha(folder))
    model = hptransfer.load_model(folder)
    state = model.state_dict()
    assert torch.equal(state[name.removeprefix("model/")], other)
    assert not state[weight.removeprefix("model/")][~other].any()


def test_a_ray_train_checkpoint_folder_loads_its_step(ddp) -> None:
    """On Ray Train's layout: the last checkpoint is the final model, the one before not."""
    tokens = torch.arange(16).view(1, 16) % 7
    final = _logits(hptransfer.load_model(ddp.folder), tokens)
    last = _logits(hptransfer.load_model(ddp.folder / checkpoint_name(20)), tokens)
    before = _logits(hptransfer.load_model(ddp.folder / checkpoint_name(15)), tokens)
    assert torch.equal(last, final)
    assert not torch.allclose(before, final, rtol=1e-3)


def test_an_older_checkpoint_without_its_configuration_uses_the_targets(ddp, short_root) -> None:
    folder = short_root / "old-checkpoint"
    shutil.copytree(ddp.folder, folder)
    checkpoint = folder / checkpoint_name(15)
    meta = json.loads((checkpoint / STATE_JSON).read_text())
    del meta["config"]
    (checkpoint / STATE_JSON).write_text(json.dumps(meta))
    tokens = torch.zeros(1, 16, dtype=torch.long)
    expected = _logits(hptransfer.load_model(ddp.folder / checkpoint_name(15)), tokens)
    assert torch.equal(_logits(hptransfer.load_model(checkpoint), tokens), expected)
    (folder / CONFIG_FILE).unlink()
    with pytest.raises(ResultsError, match=f"predates .* has no {CONFIG_FILE} yet") as error:
        hptransfer.load_model(checkpoint)
    assert "\n" not in str(error.value)


def test_a_folder_that_is_neither_is_one_line(live, tmp_path) -> None:
    cases = {
        tmp_path / "missing": "is neither a trained target's folder .* nor one of its checkpoints",
        live["folder"]: rf"has no {CONFIG_FILE} yet .*: load one of its checkpoints, e\.g\. "
        rf".*{checkpoint_name(20)}$",
    }
    cut = tmp_path / checkpoint_name(5)
    shutil.copytree(live["folder"] / checkpoint_name(5), cut)
    (cut / STATE_TENSORS).write_bytes((cut / STATE_TENSORS).read_bytes()[:100])
    cases[cut] = "is incomplete"
    for folder, expected in cases.items():
        with pytest.raises(ResultsError, match=expected) as error:
            hptransfer.load_model(folder)
        assert "\n" not in str(error.value)


def _rewrite_meta(folder: Path, **changes) -> None:
    meta = json.loads((folder / STATE_JSON).read_text())
    (folder / STATE_JSON).write_text(json.dumps({**meta, **changes}))


def _sha(folder: Path) -> str:
    import hashlib

    return hashlib.sha256((folder / STATE_TENSORS).read_bytes()).hexdigest()
