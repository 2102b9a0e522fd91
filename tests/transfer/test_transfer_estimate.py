"""The memory estimate is an upper bound on a real training process (the OOM guard)."""

from __future__ import annotations

import json
import subprocess
import sys

# Weights, grads and Adam states dominate the model's share (≈ 0.45 GiB) at width 1024.
SCRIPT = """
import json, resource
from hptransfer.config import BaseShape, DataConfig, ModelConfig, RunConfig, TrainConfig
from hptransfer.data import load_dataset
from hptransfer.train import complete_run, train
from hptransfer.cost import estimate

run = RunConfig(
    model=ModelConfig(width=1024, depth=2, heads=4, context=16, density=0.25),
    data=DataConfig(corpus="synthetic", batch_size=4, seq_len=16, eval_batches=1),
    train=TrainConfig(steps=2, warmup_steps=0),
    base=BaseShape(width=64),
)
run = complete_run(run, load_dataset(run.data))
train(run)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"peak": peak, "estimate": estimate(run, 1e9).memory_bytes}))
"""


def test_memory_estimate_bounds_the_peak_rss_of_training() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=True
    )
    result = json.loads(proc.stdout)
    assert result["peak"] <= result["estimate"] <= 1.5 * result["peak"]
