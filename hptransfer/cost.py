"""What training one run costs, estimated before anything trains.

Parameters, training memory (weights, grads, optimizer states, masks, activations, workspace,
runtime), FLOPs per step and step time from this CPU's measured GEMM rate; and the check that
a run fits the memory where it will train (how many may run at once). ``hptransfer transfer``
prints these before training a target; :mod:`hptransfer.distributed.cost` extends them to Ray Train.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hptransfer.adapt import describe
from hptransfer.config import ModelConfig, RunConfig
from hptransfer.display import format_duration
from hptransfer.errors import ConfigError, ResultsError
from hptransfer.models.llama import swiglu_hidden
from hptransfer.param import ParamHP, Role

if TYPE_CHECKING:
    from hptransfer.runtime.cluster import Execution

GIB = 2**30
FP32_BYTES = 4
# A Ray Tune worker with torch loaded, before the model (measured RSS 0.4-0.7 GiB).
RUNTIME_BYTES = 3 * GIB // 4
# A CPU training step's FLOP rate over a 1024³ fp32 GEMM's: measured 0.8-1.2 for GPTs of
# width 512-2048 (batch 16 × 64 tokens, one thread); a little below, to lean conservative.
TRAIN_EFFICIENCY = 0.75
# Per-step cost that FLOPs miss (Python, autograd, per-tensor optimizer loops): a width-64,
# depth-2 GPT step took about 25 ms more than its FLOPs predict.
STEP_OVERHEAD_S = 0.025


@dataclass(frozen=True)
class Estimate:
    """The cost of training one run (an estimate, not a measurement).

    ``memory`` is in bytes per component; FLOPs count dense GEMMs (6 per matmul parameter
    and token, plus attention), since the torch kernel does not skip masked zeros.
    """

    params: int
    nonzero: int
    memory: dict[str, int]
    flops_per_step: float
    flops_per_s: float

    @property
    def memory_bytes(self) -> int:
        return sum(self.memory.values())

    @property
    def step_s(self) -> float:
        return self.flops_per_step / self.flops_per_s + STEP_OVERHEAD_S

    def memory_text(self) -> str:
        parts = ", ".join(f"{k} {v / GIB:.2f}" for k, v in self.memory.items())
        return f"≈ {self.memory_bytes / GIB:.1f} GiB ({parts})"

    def summary(self, steps: int) -> str:
        """Three indented lines: parameters, memory, time."""
        return (
            f"  parameters  {_si(self.params)} stored, {_si(self.nonzero)} non-zero\n"
            f"  memory      {self.memory_text()}\n"
            f"  time        ≈ {_seconds(self.step_s)}/step ({_si(self.flops_per_step, 'FLOP')} at "
            f"{_si(self.flops_per_s, 'FLOP/s')}, this CPU's GEMM rate × {TRAIN_EFFICIENCY:g}, "
            f"+ {STEP_OVERHEAD_S * 1e3:g} ms) → "
            f"{steps} steps ≈ {format_duration(steps * self.step_s)}"
        )


def _si(value: float, unit: str = "") -> str:
    """``201.6 M``, ``38.69 GFLOP``: four significant digits and an SI prefix."""
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1)):
        if value >= scale:
            return f"{value / scale:.4g} {prefix}{unit}".rstrip()
    return f"{value:.4g} {unit}".rstrip()


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s" if value < 60 else format_duration(value)


def estimate(run: RunConfig, flops_per_s: float) -> Estimate:
    """Parameters, training memory (fp32 weights, grads, optimizer states, masks,
    activations for one batch, workspace, runtime) and step time of ``run``."""
    rows = describe(run)
    numel = [math.prod(p.shape) for p in rows]
    params = sum(numel)
    largest_activation, activations = _activation_floats(run)
    memory = {
        "weights": FP32_BYTES * params,
        "grads": FP32_BYTES * params,
        "optimizer": FP32_BYTES * params * _optimizer_states(run),
        "masks": sum(n for n, p in zip(numel, rows, strict=True) if p.density < 1),  # bool
        "activations": FP32_BYTES * activations,
        # dW before masking, Adam's per-tensor temporaries, activation gradients in flight
        "workspace": 2 * FP32_BYTES * (max(numel) + largest_activation),
        "runtime": RUNTIME_BYTES,
    }
    return Estimate(
        params=params,
        nonzero=sum(round(n * p.density) for n, p in zip(numel, rows, strict=True)),
        memory=memory,
        flops_per_step=_flops_per_step(run, rows),
        flops_per_s=flops_per_s,
    )


def _optimizer_states(run: RunConfig) -> int:
    if run.train.optimizer == "sgd":
        return int(run.train.momentum > 0)
    return 2  # Adam's exp_avg and exp_avg_sq


def _tokens(run: RunConfig) -> int:
    return run.data.batch_size * (run.data.seq_len if run.model.takes_tokens else 1)


def _activation_floats(run: RunConfig) -> tuple[int, int]:
    """(largest single activation, all activations saved for backward), in floats."""
    m, tokens = run.model, _tokens(run)
    outputs = m.output_size or 0
    if m.takes_tokens:  # a python model: counted as a GPT-2 block of its width
        hidden, per_block = _block_activations(m)
        # then the embedding sum, final norm and readout inputs, logits, log-softmax, dlogits
        per_token = m.depth * per_block + 3 * m.width + 3 * outputs
        return tokens * max(hidden, outputs), tokens * per_token
    # MLP per sample: input, two per layer (linear input, ReLU output), logits ×3
    per_sample = (m.input_size or 0) + 2 * (m.depth + 1) * m.width + 3 * outputs
    return tokens * max(m.width, outputs), tokens * per_sample


def _block_activations(m: ModelConfig) -> tuple[int, int]:
    """(FFN hidden width, floats saved per block and token)."""
    if m.block == "llama":
        hidden = swiglu_hidden(m)
        # 2 RMSNorm inputs, QKV input, q, k, v, rotated q and k, attention output, projection
        # input, SwiGLU input (11·C); gate and up outputs, SiLU output, down input (4·H)
        return hidden, 11 * m.width + 4 * hidden
    hidden = m.ffn_mult * m.width
    # 2 LayerNorm inputs, QKV input, q, k, v, attention output, projection input, FFN-up
    # input (9·C); GELU input and FFN-down input (2·ffn·C)
    return hidden, 9 * m.width + 2 * hidden


def _flops_per_step(run: RunConfig, rows: list[ParamHP]) -> float:
    """6 FLOPs per matmul parameter and token (forward + backward), plus attention."""
    lookup = run.model.takes_tokens  # GPT embeddings are lookups, not matmuls
    matmul = sum(
        math.prod(p.shape)
        for p in rows
        if len(p.shape) == 2 and not (lookup and p.role is Role.EMBEDDING)
    )
    attention = 6 * run.model.depth * run.data.seq_len * run.model.width if lookup else 0
    return float(_tokens(run) * (6 * matmul + attention))


def measured_flops_per_s(threads: int, size: int = 1024, repeats: int = 5) -> float:
    """This CPU's training throughput: the median fp32 GEMM rate × ``TRAIN_EFFICIENCY``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        a @ b  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return TRAIN_EFFICIENCY * 2 * size**3 / statistics.median(times)


# ---------------------------------------------------------------------------- memory check


def available_memory(execution: Execution) -> tuple[int | None, str]:
    """Bytes a run may use and where: None for a Ray cluster (its nodes are not visible)."""
    if execution.address:
        return None, f"the Ray cluster at {execution.address}"
    if execution.resources.gpus_per_trial > 0:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.mem_get_info()[0], "free GPU memory"
    return _mem_available(), "available RAM (MemAvailable)"


def _mem_available() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise ResultsError("/proc/meminfo has no MemAvailable line (Linux before 3.14)")


def memory_check(
    estimates: dict[str, Estimate], execution: Execution, regret_runs: int = 0
) -> tuple[int | None, str]:
    """How many runs may train at once, and a line saying so.

    Raises ConfigError, with the estimate and what to do instead, if one run does not fit
    (``regret_runs``: the size of a ``--regret`` grid, named in the message).
    """
    available, where = available_memory(execution)
    limit = execution.resources.max_concurrent
    if available is None:
        return limit, f"memory: not checked here; the runs go to {where}"
    label, worst = max(estimates.items(), key=lambda item: item[1].memory_bytes)
    if worst.memory_bytes > available:
        grid = f" (--regret would train {regret_runs} runs like it)" if regret_runs else ""
        raise ConfigError(
            f"target {label} needs {worst.memory_text()} to train{grid}, but {where} is "
            f"{available / GIB:.1f} GiB: train it on a GPU with that much memory (--gpus 1) "
            f"or a Ray cluster (--address); a smaller --batch-size only shrinks the activations"
        )
    fits = int(available // worst.memory_bytes)
    return min(fits, limit or fits), (
        f"memory: {where} is {available / GIB:.1f} GiB, enough for {fits} run(s) of "
        f"≈ {worst.memory_bytes / GIB:.1f} GiB at once"
    )
