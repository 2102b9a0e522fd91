"""What the seeds vary (masks too, by default) and the validation loss's standard error."""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from hptransfer.data import load_dataset
from hptransfer.models import build_model, sparse_layers
from hptransfer.train import complete_run, evaluate
from tests.conftest import tiny_gpt_run


def _masks(run) -> list[torch.Tensor]:
    return [layer.mask for layer in sparse_layers(build_model(run)) if layer.mask is not None]


def test_each_seed_draws_its_own_masks_unless_mask_seed_fixes_them() -> None:
    run = tiny_gpt_run(density=0.25, input_size=16, output_size=16)
    assert run.model.mask_seed is None
    seed0, seed1 = _masks(run), _masks(dataclasses.replace(run, seed=1))
    assert seed0 and not any(torch.equal(a, b) for a, b in zip(seed0, seed1, strict=True))
    fixed = run.model.replace(mask_seed=0)
    fixed0 = _masks(dataclasses.replace(run, model=fixed))
    fixed1 = _masks(dataclasses.replace(run, model=fixed, seed=1))
    assert all(torch.equal(a, b) for a, b in zip(fixed0, fixed1, strict=True))
    # seed 0 with the default is the old fixed mask 0: stored seed-0 runs stay valid
    assert all(torch.equal(a, b) for a, b in zip(seed0, fixed0, strict=True))


def test_evaluate_gives_the_mean_and_its_standard_error_over_windows() -> None:
    run = tiny_gpt_run()
    dataset = load_dataset(run.data)
    run = complete_run(run, dataset)
    model = build_model(run)
    batches = dataset.val_batches(4, 16, 3)
    mean, se = evaluate(model, batches)
    with torch.no_grad():
        per_window = torch.cat(
            [
                F.cross_entropy(model(x).transpose(1, 2), y, reduction="none").mean(1)
                for x, y in batches
            ]
        ).double()
    assert math.isclose(mean, per_window.mean().item(), rel_tol=1e-6)
    assert math.isclose(se, per_window.std().item() / math.sqrt(12), rel_tol=1e-6)
