"""The coordinate-check figure: mean |activation| per layer group against width and density."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def activation_table(records: pd.DataFrame) -> pd.DataFrame:
    """Mean |activation| per (parameterization, width, density, group, step), over seeds and
    the blocks of a group."""
    acts = records[records["metric"] == "activation"]
    keys = ["parameterization", "width", "density", "group", "step"]
    return acts.groupby(keys, as_index=False)["value"].mean()


def spread(table: pd.DataFrame, axis: str, fixed: dict[str, float]) -> pd.DataFrame:
    """max/min of the activation size along ``axis`` (width or density), per
    (parameterization, group, step), on the slice where the other axis is ``fixed``."""
    selected = table
    for column, value in fixed.items():
        selected = selected[selected[column] == value]
    stats = selected.groupby(["parameterization", "group", "step"])["value"]
    # A group that is exactly 0 everywhere (a zero-initialised readout's logits at step 1) is flat.
    ratio = (stats.max() / stats.min()).where(stats.max() > 0, 1.0)
    out = ratio.rename("spread").reset_index()
    out["axis"] = axis
    return out


def plot_coord_check(table: pd.DataFrame, axis: str, fixed: dict[str, float], path: Path) -> None:
    """One row per parameterization, one panel per layer group, x = ``axis`` (log2),
    one line per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hptransfer.analysis.plots import write_figure

    selected = table[table["value"] > 0]  # log axis: a zero readout's step-1 logits are 0
    for column, value in fixed.items():
        selected = selected[selected[column] == value]
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
                ax.set_ylabel("mean |activation|")
    axes[0][-1].legend(fontsize=6, loc="best")
    where = ", ".join(f"{k} {v:g}" for k, v in fixed.items())
    fig.suptitle(f"Coordinate check: activation size vs {axis} ({where}); flat = correct")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_figure(fig, path, dpi=72)
    plt.close(fig)
