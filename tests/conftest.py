"""Shared fixtures: tiny "debug" model flavours keep end-to-end tests cheap on 2 CPU cores."""

import dataclasses

import pytest
import torch
from hypothesis import settings

from hptransfer.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from hptransfer.param import BaseHPs, BaseShape

torch.set_num_threads(1)

# The suite draws the same property-test examples on every run, with no per-example time limit
# (a loaded CI machine is slow): a red build is then a change, not a draw. Explore new examples
# locally with `pytest --hypothesis-profile=explore`.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile("ci")


def tiny_gpt_run(**model_changes) -> RunConfig:
    shape = {"width": 32, "depth": 2, "heads": 2, "context": 16, **model_changes}
    model = ModelConfig(kind="gpt", **shape)
    return RunConfig(
        model=model,
        data=DataConfig(corpus="synthetic", batch_size=4, seq_len=16, eval_batches=2),
        train=TrainConfig(steps=5, warmup_steps=1),
        hps=BaseHPs(lr=2**-6, weight_decay=0.1),
        base=BaseShape(width=32),
    )


def tiny_mlp_run(**model_changes) -> RunConfig:
    run = tiny_gpt_run()
    return dataclasses.replace(
        run,
        model=ModelConfig(kind="mlp", **{"width": 32, "depth": 2, **model_changes}),
        data=DataConfig(corpus="digits", batch_size=16, eval_batches=2),
    )


@pytest.fixture
def gpt_run() -> RunConfig:
    return tiny_gpt_run()


@pytest.fixture
def mlp_run() -> RunConfig:
    return tiny_mlp_run()
