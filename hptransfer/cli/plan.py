"""``hptransfer plan``: the per-parameter init std, LR and multiplier at a target shape."""

from __future__ import annotations

import argparse
import dataclasses
import json

from hptransfer.budget import Horizon, budgeted, factors_line
from hptransfer.cli.options import fields_from
from hptransfer.cli.targets import parse_target
from hptransfer.config import BLOCKS, DataConfig, ModelConfig, RunConfig
from hptransfer.data.sources import IO_SIZES, io_sizes
from hptransfer.errors import ConfigError
from hptransfer.param import PARAMETERIZATIONS, BaseHPs, BaseShape
from hptransfer.param.rules import BUDGET_RULES, COMPLETEDP
from hptransfer.plan import format_table, forward_line, plan_header, plan_rows
from hptransfer.sparse_evidence import sparse_lines


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="print per-parameter init std, LR and forward multiplier at a target shape",
        description="Per-parameter HP table. The model comes from a sweep spec or from flags; "
        "--to changes width/density/depth/heads (no weights are built).",
    )
    parser.add_argument("spec", nargs="?", help="sweep YAML (model, base shape, HPs)")
    parser.add_argument(
        "--to",
        default="",
        help="target, e.g. width=4096,density=0.125; with a budget: ...,tokens=N (or "
        "steps=N),batch=B",
    )
    parser.add_argument(
        "--budget-rule",
        choices=tuple(BUDGET_RULES),
        default=COMPLETEDP.name,
        help="how the base HPs move to the target's budget (default completedp; fitted needs "
        "a fit: see transfer --dry-run)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list of rows")
    parser.add_argument(
        "-p",
        "--parameterization",
        help=f"one of {', '.join(PARAMETERIZATIONS)}; +completep[=α] adds depth rules",
    )
    model = parser.add_argument_group("model (without a spec)")
    model.add_argument("--kind", default="gpt", choices=("gpt", "mlp"))
    model.add_argument("--width", type=int, default=128)
    model.add_argument("--block", default="gpt2", choices=BLOCKS, help="GPT block (gpt2)")
    model.add_argument("--depth", type=int, default=2)
    model.add_argument("--heads", type=int, default=4)
    model.add_argument("--context", type=int, default=128)
    model.add_argument("--base-width", type=int, help="base (proxy) width; default --width")
    model.add_argument("--lr", type=float, default=BaseHPs.lr, help="base learning rate η")
    model.add_argument("--init-std", type=float, default=BaseHPs.init_std, help="base σ")
    model.add_argument(
        "--alpha-attn",
        type=float,
        default=BaseHPs.alpha_attn,
        help="base attention logit multiplier α_attn (on top of the parameterization's scale)",
    )
    model.add_argument(
        "--lr-emb-ratio",
        type=float,
        default=BaseHPs.lr_emb_ratio,
        help="κ: the embeddings' and readout's LR over η (η_emb = κ·η)",
    )
    parser.set_defaults(func=run)


def base_run(args: argparse.Namespace) -> RunConfig:
    """The proxy run: from the spec if given, else from the flags."""
    if args.spec:
        from hptransfer.sweep.parse import load_spec

        cell = load_spec(args.spec).cells[0]
        base = cell.base
        run = dataclasses.replace(
            cell,
            model=cell.model.replace(
                width=base.width, density=base.density, depth=base.depth or cell.model.depth
            ),
        )
    else:
        corpus = "digits" if args.kind == "mlp" else "shakespeare"
        inputs, outputs = IO_SIZES[corpus]
        run = RunConfig(
            model=ModelConfig(
                **fields_from(args, ModelConfig, input_size=inputs, output_size=outputs)
            ),
            data=DataConfig(corpus=corpus, seq_len=min(args.context, DataConfig.seq_len)),
            hps=BaseHPs(
                lr=args.lr,
                init_std=args.init_std,
                alpha_attn=args.alpha_attn,
                lr_emb_ratio=args.lr_emb_ratio,
            ),
            base=BaseShape(width=args.base_width or args.width),
        )
    if args.parameterization:
        run = dataclasses.replace(run, parameterization=args.parameterization)
    inputs, outputs = io_sizes(run.data.corpus, run.data.path)
    model = run.model.replace(
        input_size=run.model.input_size or inputs, output_size=run.model.output_size or outputs
    )
    return dataclasses.replace(run, model=model)


def target_run(run: RunConfig, to: str, rule: str = COMPLETEDP.name) -> tuple[RunConfig, str]:
    """The proxy run moved to ``--to``'s shape and budget, and the budget's line (or "")."""
    if not to:
        return run, ""
    target = parse_target(to)
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


def run(args: argparse.Namespace) -> int:
    target, budget = target_run(base_run(args), args.to, args.budget_rule)
    rows = plan_rows(target)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(plan_header(target))
    print(forward_line(target))
    if budget:
        print(budget)
    print("\n".join(sparse_lines(target)))
    print(format_table(rows))
    return 0
