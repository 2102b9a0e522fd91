"""How sparse a target is per row and per token, and where this project's studies found SμPar
losing to SP: the lines ``plan`` and ``transfer`` print under a sparse target's header.

``d·ρ`` is the number of non-zero weights per row of a width-``d`` hidden layer at density
``ρ``. Tokens are counted per non-zero parameter and per non-zero *non-embedding* parameter
(everything but the token embedding and the readout), the count large-LM budgets use
(Chinchilla's ~20 tokens per parameter). :data:`LOSSES` lists the committed measurements in
which SμPar lost to SP on real data; a SμPar target inside the region they span (d·ρ and
tokens per non-zero non-embedding parameter no larger than some loss's) gets a warning naming
the nearest one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from hptransfer.adapt import describe
from hptransfer.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from hptransfer.param import Role

EMBEDDING_ROLES = (Role.EMBEDDING, Role.READOUT)


@dataclass(frozen=True)
class SparseBudget:
    """Non-zero weights per row, non-zero parameters and the tokens a run trains on."""

    width: int
    density: float
    nonzero: int
    nonzero_non_embedding: int
    tokens: int

    @property
    def per_row(self) -> float:
        """d·ρ: the non-zero weights per row of a width-d hidden layer."""
        return self.width * self.density

    @property
    def tokens_per_nonzero(self) -> float:
        return self.tokens / self.nonzero

    @property
    def tokens_per_nonzero_non_embedding(self) -> float:
        return self.tokens / self.nonzero_non_embedding


def sparse_budget(run: RunConfig) -> SparseBudget:
    """``run``'s :class:`SparseBudget` (its model on the meta device: no memory)."""
    nonzero = non_embedding = 0
    for p in describe(run):
        count = round(math.prod(p.shape) * p.density)
        nonzero += count
        if p.role not in EMBEDDING_ROLES:
            non_embedding += count
    row_tokens = run.data.seq_len if run.model.takes_tokens else 1
    tokens = run.train.steps * run.data.batch_size * row_tokens
    return SparseBudget(run.model.width, run.model.density, nonzero, non_embedding, tokens)


def sparsity_line(budget: SparseBudget) -> str:
    """``non-zero weights per row d·ρ = 4 (width 64 × density 1/16); 307,200 tokens: 0.58
    per non-zero parameter, 48.1 per non-zero non-embedding parameter``."""
    return (
        f"non-zero weights per row d·ρ = {budget.per_row:.4g} (width {budget.width} × density "
        f"{_fraction(budget.density)}); {budget.tokens:,} tokens: "
        f"{budget.tokens_per_nonzero:.3g} per non-zero parameter, "
        f"{budget.tokens_per_nonzero_non_embedding:.3g} per non-zero non-embedding parameter"
    )


def _fraction(density: float) -> str:
    fraction = Fraction(density).limit_denominator(1 << 12)
    return str(fraction) if float(fraction) == density else f"{density:g}"


@dataclass(frozen=True)
class Loss:
    """A committed measurement in which SμPar lost to SP on real data."""

    study: str  # the results/ folder
    what: str  # the measured gap, as its README states it
    run: RunConfig  # the sparse cell's shape and budget


def _cell(block: str, vocab: int, width: int, density: float, steps: int) -> RunConfig:
    model = ModelConfig(
        block=block, width=width, density=density, depth=2, heads=4, context=64,
        input_size=vocab, output_size=vocab,
    )  # fmt: skip
    data = DataConfig(batch_size=16, seq_len=64)
    return RunConfig(model=model, data=data, train=TrainConfig(steps=steps))


LOSSES = (
    Loss(
        "results/llama_bpe_density",
        "+0.52 nats at the dense η, +0.61 each at its best; LLaMA, BPE-4k",
        _cell("llama", 4096, 64, 1 / 16, 100),
    ),
    Loss(
        "results/realtok",
        "+0.03 nats against SP at the dense η at 900 steps, +0.24 each at its best at 300; LLaMA",
        _cell("llama", 4096, 64, 1 / 16, 900),
    ),
    Loss(
        "results/lr_vs_density_v2",
        "+0.24 nats at the dense η, past SμPar's cliff; GPT-2, bytes",
        _cell("gpt2", 256, 128, 1 / 16, 400),
    ),
)


def supar_warning(run: RunConfig, budget: SparseBudget) -> str | None:
    """A one-line warning for a sparse SμPar target inside the region where :data:`LOSSES`
    were measured, naming the nearest of them; None elsewhere (outside: not measured)."""
    if run.parameterization.split("+")[0] != "supar" or run.model.density >= 1:
        return None
    here = (budget.per_row, budget.tokens_per_nonzero_non_embedding)
    measured = [(loss, sparse_budget(loss.run)) for loss in LOSSES]
    inside = [
        (loss, b)
        for loss, b in measured
        if here[0] <= b.per_row and here[1] <= b.tokens_per_nonzero_non_embedding
    ]
    if not inside:
        return None
    loss, near = min(inside, key=lambda item: _distance(here, item[1]))
    return (
        f"warning: SμPar lost to SP at d·ρ = {near.per_row:.3g}, "
        f"{near.tokens_per_nonzero_non_embedding:.3g} tokens per non-zero non-embedding "
        f"parameter ({loss.study}: {loss.what}); this target is no wider per row nor "
        "longer: compare with --compare sp"
    )


def _distance(here: tuple[float, float], there: SparseBudget) -> float:
    return math.hypot(
        math.log2(here[0] / there.per_row),
        math.log2(here[1] / there.tokens_per_nonzero_non_embedding),
    )


def sparse_lines(run: RunConfig) -> list[str]:
    """What ``plan`` and ``transfer`` print under a target's header: the sparsity line and,
    where the studies found SμPar losing, the warning."""
    budget = sparse_budget(run)
    warning = supar_warning(run, budget)
    return [sparsity_line(budget), *([warning] if warning else [])]
