"""What a transfer reports after training: the gain table, and the regret of each target
against the LR grid around its transferred η (``--regret``)."""

from __future__ import annotations

import pandas as pd

from hptransfer.analysis.paired import PairedDifference, losses_by_seed, paired_difference
from hptransfer.analysis.regret import (
    planned_tokens,
    regret_summary,
    regret_table,
    shape_labels,
    write_regret,
)
from hptransfer.transfer.source import Source


def gain_rows(rows: pd.DataFrame, primary: str, baselines: tuple[str, ...]) -> list[dict]:
    """Per target: the mean validation loss over seeds of each parameterization; per baseline,
    the primary's gain in loss (%, positive: the primary is better) and the paired difference
    primary − baseline over the seeds both ran, with its 95% interval ("within noise" when the
    interval covers zero)."""
    target = pd.Series(shape_labels(rows), index=rows.index)
    out = []
    for label, runs in rows.groupby(target, sort=False):
        parts = dict(tuple(runs.groupby("parameterization", sort=False)))
        loss = {p: _mean_loss(part) for p, part in parts.items()}
        row: dict[str, object] = {"width × density": label, "seeds": runs["seed"].nunique()}
        row.update(loss)
        for b in baselines:
            diff = _paired(parts[primary], parts[b])
            noise = " (within noise)" if diff is not None and diff.within_noise else ""
            row[f"{primary} gain vs {b}"] = _gain(loss[primary], loss[b]) + noise
            row[f"{primary} − {b}, 95% CI"] = "-" if diff is None else diff.text()
        out.append(row)
    return out


def _paired(runs: pd.DataFrame, baseline: pd.DataFrame) -> PairedDifference | None:
    a, b = losses_by_seed(runs), losses_by_seed(baseline)
    return None if a is None or b is None else paired_difference(a, b)


def _mean_loss(runs: pd.DataFrame) -> float | str:
    if runs["status"].eq("error").any():
        return "error"
    if runs["diverged"].any():
        return "diverged"
    return float(runs["val_loss"].mean())


def _gain(loss: float | str, baseline: float | str) -> str:
    if isinstance(loss, str) or isinstance(baseline, str):
        return "-"
    return f"{100 * (baseline - loss) / baseline:+.2f}%"


def regret_report(rows: pd.DataFrame, source: Source, budget_rule: str) -> str:
    """The regret of each target against the grid around its own transferred η (``rows`` with
    ``transferred_lr``), written to regret.parquet; a target trained for another budget than
    the proxy's records the rule that moved its HPs."""
    proxy = source.proxy_horizon
    at_proxy = rows["max_steps"].eq(proxy.steps) & planned_tokens(rows).eq(proxy.tokens)
    rows = rows.assign(budget_rule=at_proxy.map({True: "", False: budget_rule}))
    parts = rows.groupby(["transferred_lr", "budget_rule"], sort=False)
    table = pd.concat(
        [regret_table(part, lr, source.fit.metric, rule) for (lr, rule), part in parts]
    )
    return (
        "\ntransfer regret (transferred η against the best of η × 2^(-1 … 1) at the target):\n"
        + regret_summary(table).to_string(index=False)
        + f"\nstored in {write_regret(table, source.sweep_dir)}"
    )
