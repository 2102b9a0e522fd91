"""``hptransfer plan``: the per-parameter init std, LR and multiplier at a target shape."""

from __future__ import annotations

import argparse
import json

from hptransfer.cli.options import fields_from
from hptransfer.cli.targets import parse_target
from hptransfer.config import BLOCKS
from hptransfer.param import PARAMETERIZATIONS, BaseHPs
from hptransfer.param.rules import BUDGET_RULES, COMPLETEDP


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


def run(args: argparse.Namespace) -> int:
    from hptransfer.transfer.plan_command import PlanRequest, plan_command

    target = parse_target(args.to) if args.to else None
    plan = plan_command(PlanRequest(**fields_from(args, PlanRequest, target=target)))
    if args.json:
        print(json.dumps(plan.rows, indent=1))
        return 0
    print(plan.text())
    return 0
