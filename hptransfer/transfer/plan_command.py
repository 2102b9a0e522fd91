"""A whole ``hptransfer plan``: a proxy run, from a sweep spec or from flags, moved to a
``--to`` target's shape and budget, and its per-parameter table (no fit, no weights)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hptransfer.budget import Horizon, TargetSpec, budgeted, factors_line
from hptransfer.config import DataConfig, ModelConfig, RunConfig
from hptransfer.data.sources import IO_SIZES, io_sizes
from hptransfer.errors import ConfigError
from hptransfer.param import BaseHPs, BaseShape
from hptransfer.param.rules import BUDGET_RULES, COMPLETEDP
from hptransfer.plan import format_table, forward_line, plan_header, plan_rows
from hptransfer.sparse_evidence import sparse_lines

# The request's fields that are the model's (without a spec).
MODEL_FIELDS = ("kind", "block", "width", "depth", "heads", "context")


@dataclass(frozen=True)
class PlanRequest:
    """What ``hptransfer plan`` is asked: a spec (else the model and base HPs below), the
    parameterization (None: the spec's or the default), the target and its budget rule."""

    spec: str | None
    target: TargetSpec | None
    budget_rule: str
    parameterization: str | None
    kind: str
    width: int
    block: str
    depth: int
    heads: int
    context: int
    base_width: int | None
    lr: float
    init_std: float
    alpha_attn: float
    lr_emb_ratio: float


@dataclass(frozen=True)
class Plan:
    """The target run, its per-parameter rows, and the lines printed above the table."""

    run: RunConfig
    rows: list[dict[str, object]]
    lines: tuple[str, ...]

    def text(self) -> str:
        return "\n".join([*self.lines, format_table(self.rows)])


def plan_command(request: PlanRequest) -> Plan:
    """The proxy run of ``request`` at its target, with the header, forward multipliers,
    budget line (a target with a budget) and sparse-evidence lines."""
    run, budget = target_run(base_run(request), request.target, request.budget_rule)
    lines = (
        plan_header(run),
        forward_line(run),
        *([budget] if budget else []),
        "\n".join(sparse_lines(run)),
    )
    return Plan(run, plan_rows(run), lines)


def base_run(request: PlanRequest) -> RunConfig:
    """The proxy run: from the spec if given, else from the request's model and base HPs."""
    if request.spec:
        from hptransfer.sweep.parse import load_spec

        cell = load_spec(request.spec).cells[0]
        base = cell.base
        run = dataclasses.replace(
            cell,
            model=cell.model.replace(
                width=base.width, density=base.density, depth=base.depth or cell.model.depth
            ),
        )
    else:
        corpus = "digits" if request.kind == "mlp" else "shakespeare"
        inputs, outputs = IO_SIZES[corpus]
        run = RunConfig(
            model=ModelConfig(
                **{name: getattr(request, name) for name in MODEL_FIELDS},
                input_size=inputs,
                output_size=outputs,
            ),
            data=DataConfig(corpus=corpus, seq_len=min(request.context, DataConfig.seq_len)),
            hps=BaseHPs(
                lr=request.lr,
                init_std=request.init_std,
                alpha_attn=request.alpha_attn,
                lr_emb_ratio=request.lr_emb_ratio,
            ),
            base=BaseShape(width=request.base_width or request.width),
        )
    if request.parameterization:
        run = dataclasses.replace(run, parameterization=request.parameterization)
    inputs, outputs = io_sizes(run.data.corpus, run.data.path)
    model = run.model.replace(
        input_size=run.model.input_size or inputs, output_size=run.model.output_size or outputs
    )
    return dataclasses.replace(run, model=model)


def target_run(
    run: RunConfig, target: TargetSpec | None, rule: str = COMPLETEDP.name
) -> tuple[RunConfig, str]:
    """The proxy run moved to ``target``'s shape and budget, and the budget's line (or "")."""
    if target is None:
        return run, ""
    reshaped = run.retarget(**target.shape.changes())
    if not target.has_budget:
        return reshaped, ""
    rules = BUDGET_RULES[rule]
    if rules is None:  # fitted
        raise ConfigError(
            "plan --budget-rule fitted needs a fitted sweep: use `hptransfer transfer --from "
            "<sweep> --to ... --budget-rule fitted --dry-run`"
        )
    row_tokens = run.data.seq_len if run.model.takes_tokens else 1
    proxy = Horizon(run.train.steps, run.data.batch_size, row_tokens)
    moved = budgeted(reshaped, proxy, target, rules)
    horizon = Horizon(moved.train.steps, moved.data.batch_size, row_tokens)
    return moved, factors_line(rules, proxy, horizon)
