"""One training run: build the model and optimizer from the run's parameterization, train,
evaluate, and return tidy metrics. No Ray, no storage: the sweep layer wraps this.

A run whose loss turns NaN/inf, or exceeds ``divergence_factor`` times its initial loss, is
stopped and returned with ``diverged=True``: a diverged run is data, not an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from hptransfer import provenance
from hptransfer.adapt import build_model, plan_parameters
from hptransfer.adapt.builder import load_function
from hptransfer.config import RunConfig, TrainConfig
from hptransfer.data import Dataset, load_dataset
from hptransfer.errors import ConfigError
from hptransfer.models import sparse_layers
from hptransfer.optim import build_optimizer, build_schedule, lr_factor_at

LOSS_WINDOW = 10  # the reported train loss is the mean of the last steps' losses


@dataclass
class RunResult:
    train_loss: float
    val_loss: float
    val_loss_se: float
    diverged: bool
    steps: int
    tokens: int
    wall_s: float
    kernel: str
    provenance: dict[str, str] = field(default_factory=dict)
    curve: list[dict[str, float]] = field(default_factory=list)


def complete_run(run: RunConfig, dataset: Dataset) -> RunConfig:
    """Fill dataset-derived model sizes and check the model fits the data."""
    model = run.model
    if model.takes_tokens != (dataset.kind == "text"):
        raise ConfigError(
            f"model.kind {model.kind} does not fit data.corpus {run.data.corpus} "
            "(gpt and python need a text corpus, mlp needs digits)"
        )
    if model.takes_tokens and run.data.seq_len > model.context:
        raise ConfigError(
            f"data.seq_len ({run.data.seq_len}) exceeds model.context ({model.context})"
        )
    model = model.replace(
        input_size=model.input_size or dataset.input_size,
        output_size=model.output_size or dataset.output_size,
    )
    return dataclasses.replace(run, model=model)


def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


class Evaluation(NamedTuple):
    loss: float
    se: float  # its standard error over the validation examples


@torch.no_grad()
def evaluate(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> Evaluation:
    """The validation loss (mean over all targets) and its standard error.

    The standard error treats each validation example (a token window, or a sample) as one
    draw: the standard deviation of the per-example mean losses over √(examples). It is the
    noise the finite validation set adds to one run's loss.
    """
    model.eval()
    per_example = torch.cat([_example_losses(model, x, y) for x, y in batches])
    model.train()
    n = per_example.numel()
    se = per_example.std().item() / math.sqrt(n) if n > 1 else math.nan
    return Evaluation(per_example.mean().item(), se)


def _example_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x)
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
    return losses.view(y.shape[0], -1).mean(1).double()


@dataclass
class LossTracker:
    """The reported train loss (mean of the last ``LOSS_WINDOW`` steps) and divergence: a
    loss that is not finite or exceeds ``divergence_factor`` times the first step's."""

    divergence_factor: float
    first: float = math.nan
    recent: list[float] = field(default_factory=list)
    diverged: bool = False

    def add(self, loss: float) -> bool:
        """Record one step's loss; True if the run diverged."""
        if not self.recent:
            self.first = loss
        self.recent = [*self.recent[-(LOSS_WINDOW - 1) :], loss]
        self.diverged = not math.isfinite(loss) or loss > self.divergence_factor * self.first
        return self.diverged

    def point(self, step: int, tokens: int, val_loss: Callable[[], float]) -> dict[str, float]:
        """The curve point at ``step`` (no evaluation once diverged)."""
        return {
            "step": step,
            "tokens": tokens,
            "train_loss": self.recent[-1] if self.diverged else sum(self.recent) / len(self.recent),
            "val_loss": math.nan if self.diverged else val_loss(),
        }


def val_batches(
    run: RunConfig, dataset: Dataset, device: torch.device | str
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The run's fixed validation batches, on ``device``."""
    batches = dataset.val_batches(run.data.batch_size, run.data.seq_len, run.data.eval_batches)
    return [(x.to(device), y.to(device)) for x, y in batches]


def is_eval_step(step: int, train: TrainConfig) -> bool:
    return step == train.steps or bool(train.eval_every and step % train.eval_every == 0)


def kernel_path(model: nn.Module) -> str:
    """Which masked-matmul backend the sparse layers use ("dense" if there are none)."""
    backends = {layer.backend() for layer in sparse_layers(model) if layer.mask is not None}
    return ",".join(sorted(backends)) or "dense"


def train(
    run: RunConfig,
    *,
    on_eval: Callable[[dict[str, float]], None] | None = None,
    device: str = "cpu",
    autocast: Callable[[], AbstractContextManager] = contextlib.nullcontext,
) -> RunResult:
    """Train ``run`` and return its metrics; ``on_eval`` receives each curve point;
    ``autocast`` wraps each forward, validation included (mixed precision)."""
    start = time.perf_counter()
    dataset = load_dataset(run.data)
    run = complete_run(run, dataset)
    model = build_model(run, device=device)
    optimizer = build_optimizer(model, plan_parameters(model, run), run.train)
    schedule = build_schedule(optimizer, run.train)
    val = val_batches(run, dataset, device)
    generator = torch.Generator().manual_seed(run.seed)
    tokens_per_step = run.data.batch_size * (run.data.seq_len if dataset.kind == "text" else 1)

    curve: list[dict[str, float]] = []
    tracker = LossTracker(run.train.divergence_factor)
    last_eval = Evaluation(math.nan, math.nan)

    def val_loss() -> float:
        nonlocal last_eval
        with autocast():
            last_eval = evaluate(model, val)
        return last_eval.loss

    def draw() -> tuple[torch.Tensor, torch.Tensor]:
        x, y = dataset.train_batch(run.data.batch_size, run.data.seq_len, generator)
        return x.to(device), y.to(device)

    def record(step: int, loss: float) -> bool:
        diverged = tracker.add(loss)
        if diverged or is_eval_step(step, run.train):
            curve.append(tracker.point(step, step * tokens_per_step, val_loss))
            if on_eval is not None:
                on_eval(curve[-1])
        return diverged

    if run.train.kind == "python":
        context = Context(draw, run.data.batch_size, 1, autocast)
        train_with_function(run, model, optimizer, schedule, context, record)
    else:
        for step in range(1, run.train.steps + 1):
            loss = train_step(model, optimizer, [draw()], run.train.grad_clip, autocast)
            schedule.step()
            if record(step, loss):
                break
    step = curve[-1]["step"]
    last = curve[-1]
    return RunResult(
        train_loss=last["train_loss"],
        val_loss=last["val_loss"],
        val_loss_se=last_eval.se if not tracker.diverged else math.nan,
        diverged=tracker.diverged,
        steps=int(step),
        tokens=int(step) * tokens_per_step,
        wall_s=time.perf_counter() - start,
        kernel=kernel_path(model),
        provenance=provenance.run_fields(device),
        curve=curve,
    )


@dataclass(frozen=True)
class Budget:
    """What a ``train: {kind: python, fn: ...}`` function trains for: ``steps`` optimizer steps
    of ``batch_size`` rows (this worker's share on Ray Train) of ``seq_len`` tokens, the LR
    schedule's factor at each step (1-based; ``scheduler.step()`` applies it), gradient
    clipping and the mixed-precision context to wrap each forward in."""

    steps: int
    first_step: int  # 1, or the step after a checkpoint's
    batch_size: int
    seq_len: int
    grad_clip: float | None
    autocast: Callable[[], AbstractContextManager]
    train: TrainConfig = field(repr=False)

    def lr_factor(self, step: int) -> float:
        return lr_factor_at(step - 1, self.train)


class Context(NamedTuple):
    """Where a training function's batches come from: ``draw()`` gives the next one (on the
    device), of ``rows`` rows; training resumes at ``first_step``."""

    draw: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    rows: int
    first_step: int
    autocast: Callable[[], AbstractContextManager]


def train_with_function(
    run: RunConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    context: Context,
    record: Callable[[int, float], bool],
) -> None:
    """Run the user's ``train.fn``: called with ``model``, ``optimizer``, ``scheduler``,
    ``batches`` (``(step, (x, y))`` from the first step to the last, ending early once the run
    stopped), ``budget`` (:class:`Budget`) and ``report(step, loss)``, which must follow every
    step in order (it records the loss, evaluates, and returns True once the run diverged)."""
    path, expected, stopped = str(run.train.fn), context.first_step, False

    def report(step: int, loss: float) -> bool:
        nonlocal expected, stopped
        if stopped:
            return True
        if step != expected:
            raise ConfigError(f"train.fn {path!r} reported step {step}, expected {expected}")
        expected, stopped = step + 1, record(step, float(loss))
        return stopped

    def batches() -> Iterator[tuple[int, tuple[torch.Tensor, torch.Tensor]]]:
        for step in range(context.first_step, run.train.steps + 1):
            if stopped:
                return
            yield step, context.draw()

    t, data = run.train, run.data
    budget = Budget(
        t.steps, context.first_step, context.rows, data.seq_len, t.grad_clip, context.autocast, t
    )
    function = load_function("train.fn", path)
    try:
        function(
            model=model,
            optimizer=optimizer,
            scheduler=schedule,
            batches=batches(),
            budget=budget,
            report=report,
        )
    except ConfigError:
        raise
    except Exception as exc:
        at = f"at step {expected}" if expected <= t.steps else "after its last step"
        raise ConfigError(f"train.fn {path!r} raised {type(exc).__name__} {at}: {exc}") from None
    if not stopped and expected <= t.steps:
        raise ConfigError(
            f"train.fn {path!r} returned at step {expected - 1} of {t.steps}: call "
            "report(step, loss) after every step of batches"
        )


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    grad_clip: float | None,
    autocast: Callable[[], AbstractContextManager] = contextlib.nullcontext,
    accumulating: Callable[[], AbstractContextManager] = contextlib.nullcontext,
) -> float:
    """One optimizer step over equal-sized micro-batches (gradients accumulated as their
    mean); returns the mean loss. ``autocast`` wraps each forward (mixed precision);
    ``accumulating`` wraps every micro-batch but the last (data parallelism: no gradient
    exchange until the last one)."""
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for i, (x, y) in enumerate(batches, 1):
        with accumulating() if i < len(batches) else contextlib.nullcontext():
            with autocast():
                loss = loss_fn(model, x, y)
            # One batch is not rescaled: the one-process loop's results stay bit for bit.
            (loss if len(batches) == 1 else loss / len(batches)).backward()
        total += loss.item()
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return total / len(batches)
