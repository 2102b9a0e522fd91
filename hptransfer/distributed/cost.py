"""The one-process estimate of :mod:`hptransfer.cost`, for a target on Ray Train.

Per worker: DDP holds full weights, gradients, optimizer state and a gradient-bucket copy;
FSDP2 a 1/workers shard of each, plus one block gathered whole. Activations shrink with the
worker's micro-batch, and in bf16 are stored at half the bytes (plus bf16 copies of the
weights that autocast makes). Every worker carries its own runtime and masks. The memory is
the sum over workers (on one machine they share it); the step time assumes the workers run
in parallel on their share of the FLOPs.
"""

from __future__ import annotations

import dataclasses

from hptransfer.config import RunConfig
from hptransfer.cost import FP32_BYTES, Estimate
from hptransfer.runtime.resources import TargetConfig

BF16_BYTES = 2


def target_estimate(
    estimate: Estimate, run: RunConfig, target: TargetConfig, device_type: str = "cpu"
) -> Estimate:
    """``estimate`` (one process, whole batch, fp32) for ``target``'s workers together."""
    workers = target.workers
    shard = workers if target.strategy == "fsdp" else 1
    memory = estimate.memory
    micro, _ = target.micro_batches(run.data.batch_size)
    bf16 = target.resolved_precision(device_type) == "bf16"
    activations = memory["activations"] * micro / run.data.batch_size
    per_worker = {
        "weights": memory["weights"] / shard,
        "grads": memory["grads"] / shard,
        "optimizer": memory["optimizer"] / shard,
        "masks": memory["masks"],
        "activations": activations * (BF16_BYTES / FP32_BYTES if bf16 else 1),
        "workspace": memory["workspace"],
        "runtime": memory["runtime"],
    }
    if target.strategy == "ddp" and workers > 1:
        per_worker["buckets"] = memory["grads"]  # DDP's flat all-reduce buckets
    if target.strategy == "fsdp":
        # one block's weights and grads gathered whole during its forward/backward
        per_worker["gathered"] = 2 * memory["weights"] / max(1, run.model.depth)
    if bf16:
        per_worker["bf16 weights"] = memory["weights"] / shard * BF16_BYTES / FP32_BYTES
    return dataclasses.replace(
        estimate,
        memory={name: int(value * workers) for name, value in per_worker.items()},
        flops_per_step=estimate.flops_per_step / workers,
    )


def target_label(target: TargetConfig, device_type: str = "cpu") -> str:
    precision = target.resolved_precision(device_type)
    return f"{target.workers} worker(s), {target.strategy}, {precision}"
