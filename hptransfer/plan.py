"""The per-parameter HP table of a run (init std, LR, forward multiplier), as text.

One place for the table ``hptransfer plan`` and ``hptransfer transfer`` print: its rows
(:meth:`hptransfer.param.ParamHP.table_row`), a header naming the shape and multipliers, and
the aligned text layout (also used for transfer's gain table).
"""

from __future__ import annotations

from hptransfer.adapt import build_model, describe
from hptransfer.adapt.table import forward_line as installed
from hptransfer.adapt.table import table_of
from hptransfer.config import RunConfig
from hptransfer.models import forward_scales
from hptransfer.param import parameterization
from hptransfer.param.resolve import MUON


def shape_label(run: RunConfig) -> str:
    m = run.model
    return f"width {m.width}, density {m.density:g}, depth {m.depth}, heads {m.heads}"


def plan_rows(run: RunConfig) -> list[dict[str, object]]:
    """``hptransfer plan``'s per-parameter table of the run (meta device, no memory); under
    ``optimizer: muon`` each row also names the parameter's optimizer (muon or adamw)."""
    params = describe(run)
    muon = run.train.optimizer == MUON
    return [
        {**p.table_row(), **({"optimizer": p.optimizer or "adamw"} if muon else {})} for p in params
    ]


def plan_header(run: RunConfig) -> str:
    """The run's parameterization, shape, multipliers and base shape, on one line (with m_L
    and the base depth under depth rules)."""
    m, base = run.multipliers, run.base
    depth = ""
    if parameterization(run.parameterization).depth_rules:
        depth = f", depth {base.depth or run.model.depth}"
    kind = {"gpt": f"gpt ({run.model.block} block)", "python": f"python ({run.model.build})"}
    kind = kind.get(run.model.kind, run.model.kind)
    return (
        f"{run.parameterization}: {kind} {shape_label(run)} "
        f"(m_d = {m.width:g}, m_rho = {m.density:g}"
        + (f", m_L = {m.depth:g}" if depth else "")
        + f"; base width {base.width}, density {base.density:g}, "
        f"heads {base.heads or run.model.heads}{depth})"
    )


def forward_line(run: RunConfig) -> str:
    """The forward multipliers of the run: embedding, readout and (GPT) attention logits,
    the last with its base multiplier α_attn."""
    if run.model.kind == "python":  # what parametrize installed on the user's model
        return installed(table_of(build_model(run, device="meta")))
    scales = forward_scales(run)
    line = f"forward: embedding × {scales.embedding:.4g}, readout × {scales.readout:.4g}"
    if run.model.kind == "gpt":
        line += f", attention logits × {scales.attention:.4g} (α_attn {run.hps.alpha_attn:.4g})"
    return line


def format_table(rows: list[dict[str, object]]) -> str:
    """A plain aligned text table; floats in 4 significant digits."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, list):
            return "×".join(map(str, value))
        return str(value)

    header = list(rows[0])
    cells = [[cell(row[k]) for k in header] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
