"""The coordinate-check figure: mean |activation| (or |output update|) per layer group against
width, density or depth."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def activation_table(records: pd.DataFrame, metric: str = "activation") -> pd.DataFrame:
    """Mean ``metric`` per (parameterization, width, density, depth, group, step), over seeds
    and the blocks of a group (records without a depth column: one depth)."""
    acts = records[records["metric"] == metric]
    keys = ["parameterization", "width", "density", "depth", "group", "step"]
    return acts.groupby([k for k in keys if k in acts], as_index=False)["value"].mean()


def spread(table: pd.DataFrame, axis: str, fixed: dict[str, float]) -> pd.DataFrame:
    """max/min of the activation size along ``axis`` (width, density or depth), per
    (parameterization, group, step), on the slice where the other axes are ``fixed``."""
    selected = _slice(table, fixed)
    stats = selected.groupby(["parameterization", "group", "step"])["value"]
    # A group that is exactly 0 everywhere (a zero-initialised readout's logits at step 1) is flat.
    ratio = (stats.max() / stats.min()).where(stats.max() > 0, 1.0)
    out = ratio.rename("spread").reset_index()
    out["axis"] = axis
    return out


def _slice(table: pd.DataFrame, fixed: dict[str, float]) -> pd.DataFrame:
    """The rows where each ``fixed`` column has its value (columns the table lacks: all)."""
    for column, value in fixed.items():
        if column in table:
            table = table[table[column] == value]
    return table


def plot_coord_check(
    table: pd.DataFrame,
    axis: str,
    fixed: dict[str, float],
    path: Path,
    metric: str = "activation",
) -> None:
    """One row per parameterization, one panel per layer group, x = ``axis`` (log2),
    one line per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hptransfer.analysis.plots import write_figure

    selected = _slice(table[table["value"] > 0], fixed)  # log axis: 0 (zero readout) dropped
    params = list(dict.fromkeys(selected["parameterization"]))
    groups = list(dict.fromkeys(selected["group"]))
    fig, axes = plt.subplots(
        len(params),
        len(groups),
        figsize=(2.6 * len(groups), 2.4 * len(params)),
        squeeze=False,
        sharex=True,
    )
    cmap = plt.get_cmap("viridis")
    steps = sorted(selected["step"].unique())
    for row, p in enumerate(params):
        for col, group in enumerate(groups):
            ax = axes[row][col]
            panel = selected[(selected["parameterization"] == p) & (selected["group"] == group)]
            for i, step in enumerate(steps):
                line = panel[panel["step"] == step].sort_values(axis)
                ax.plot(
                    line[axis],
                    line["value"],
                    marker="o",
                    ms=3,
                    color=cmap(i / max(1, len(steps) - 1)),
                    label=f"step {step}",
                )
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{p}: {group}", fontsize=9)
            if row == len(params) - 1:
                ax.set_xlabel(axis)
            if col == 0:
                ax.set_ylabel(f"mean |{metric.replace('_', ' ')}|")
    axes[0][-1].legend(fontsize=6, loc="best")
    where = ", ".join(f"{k} {v:g}" for k, v in fixed.items())
    what = metric.replace("_", " ")
    fig.suptitle(f"Coordinate check: {what} size vs {axis} ({where}); flat = correct")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_figure(fig, path, dpi=72)
    plt.close(fig)
