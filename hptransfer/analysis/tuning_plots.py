"""Figures of the base tuning and what it buys at the targets.

- :func:`plot_joint_base`: at the base shape of a joint search, the loss vs η with the other
  base HPs at their defaults (an η-only search) against η at the jointly best point, and the
  loss vs σ at the best η per α_out.
- :func:`plot_regret`: the transfer regret per target and parameterization
  (:mod:`hptransfer.analysis.regret`), and each target's loss vs η around the transferred η.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hptransfer.analysis import fit as fitting
from hptransfer.analysis.names import HP_LABELS, METRIC_LABELS, param_color
from hptransfer.analysis.regret import OFFSETS, TARGET, budget_labels, shape_labels
from hptransfer.param import BaseHPs, param_label, param_order

DEFAULTS = BaseHPs()


def tuning_figures(
    trials: pd.DataFrame,
    fit: fitting.Fit,
    transfer_runs: pd.DataFrame | None,
    regret: pd.DataFrame | None,
) -> Iterator[tuple[str, Figure]]:
    """(file stem, figure): the joint base per parameterization, the regret if measured."""
    usable, _ = fitting.usable_mask(trials, fit.metric)
    base = fit.base_shape()
    at_base = usable & trials["width"].eq(base.width) & np.isclose(trials["density"], base.density)
    for param, joint in fit.joint.items():
        runs = trials[at_base & trials["parameterization"].eq(param)]
        if (fig := plot_joint_base(runs, joint, fit.metric)) is not None:
            yield f"joint_base_{param}", fig
    if regret is not None and transfer_runs is not None:
        yield "transfer_regret", plot_regret(regret, transfer_runs, fit.metric)


def _figure(n_panels: int, title: str) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(4.4 * n_panels + 0.6, 3.9), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title)
    return fig, list(fig.subplots(1, n_panels, squeeze=False)[0])


def _line(ax: Axes, x: pd.Series, loss: pd.Series, **style: Any) -> None:
    """Mean over seeds at each x, with the min–max band."""
    stats = loss.groupby(x).agg(["mean", "min", "max"])
    ax.plot(stats.index, stats["mean"], "o-", ms=3, **style)
    ax.fill_between(stats.index, stats["min"], stats["max"], color=style.get("color"), alpha=0.2)


# ---------------------------------------------------------------------------- joint base


def plot_joint_base(runs: pd.DataFrame, joint: dict[str, Any], metric: str) -> Figure | None:
    """η-only vs jointly tuned base (usable runs of one parameterization at the base shape);
    None when the search holds no η line at the default σ/α_out or does not search σ."""
    others = [hp for hp in joint["hps"] if hp != "lr"]
    if "lr" not in joint["hps"] or "init_std" not in others:
        return None
    at_default = np.all([np.isclose(runs[hp], getattr(DEFAULTS, hp)) for hp in others], axis=0)
    means = runs.groupby(others)[metric].mean()
    best = dict(zip(others, np.atleast_1d(means.idxmin()), strict=True))
    at_best = np.all([np.isclose(runs[hp], v) for hp, v in best.items()], axis=0)
    if not at_default.any():
        return None
    default_loss = runs[at_default].groupby("lr")[metric].mean().min()
    best_loss = runs[at_best].groupby("lr")[metric].mean().min()
    gain = 100 * (default_loss - best_loss) / default_loss
    title = f"base tuning: best jointly tuned loss {gain:.1f}% below the η-only search's"
    fig, (left, right) = _figure(2, title)
    label = ", ".join(f"{hp} {getattr(DEFAULTS, hp):g}" for hp in others)
    _line(left, runs.loc[at_default, "lr"], runs.loc[at_default, metric], color="tab:gray",
          label=f"η only ({label}): best {default_loss:.3f}")  # fmt: skip
    label = ", ".join(f"{hp} {v:.3g}" for hp, v in best.items())
    _line(left, runs.loc[at_best, "lr"], runs.loc[at_best, metric], color="tab:green",
          label=f"joint best point ({label}): best {best_loss:.3f}")  # fmt: skip
    lr = joint["hps"]["lr"]
    left.plot(lr["value"], joint["loss"], "*", ms=12, color="tab:green",
              label=f"fitted joint optimum: {joint['loss']:.3f}")  # fmt: skip
    _axes(left, "lr", metric)
    _sigma_panel(right, runs, joint, metric)
    return fig


def _sigma_panel(ax: Axes, runs: pd.DataFrame, joint: dict[str, Any], metric: str) -> None:
    """Loss vs σ at the grid η nearest the joint optimum, a line per α_out (if searched)."""
    spread = runs.groupby("lr")["init_std"].nunique()
    lrs = spread.index[spread.eq(spread.max())].to_numpy()  # the grid's η, not a slice's
    lr = lrs[np.argmin(np.abs(np.log2(lrs) - joint["hps"]["lr"]["log2"]))]
    near = runs[np.isclose(runs["lr"], lr)]
    groups = near.groupby("alpha_out") if "alpha_out" in joint["hps"] else [(None, near)]
    for alpha, part in groups:
        label = "" if alpha is None else f"α_out {alpha:g}"
        _line(ax, part["init_std"], part[metric], label=label or None)
    ax.set_title(f"at η = 2^{np.log2(lr):.1f}")
    _axes(ax, "init_std", metric)


def _axes(ax: Axes, hp: str, metric: str) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xlabel(HP_LABELS.get(hp, hp))
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


# ---------------------------------------------------------------------------- regret


def plot_regret(table: pd.DataFrame, runs: pd.DataFrame, metric: str) -> Figure:
    """Regret (%) per target and parameterization, then a panel per target: loss vs
    η / transferred η, the transferred run starred."""
    targets = table[list(TARGET)].drop_duplicates()
    fig, axes = _figure(1 + len(targets), "transfer regret: transferred η vs tuned at the target")
    params = param_order(table["parameterization"])
    _regret_bars(axes[0], table, targets, params)
    usable = runs[runs["status"].eq("completed") & ~runs["diverged"].astype(bool)]
    for ax, (_, target) in zip(axes[1:], targets.iterrows(), strict=True):
        rows = usable[_at_target(usable, target)]
        for param in params:
            row = table[table["parameterization"].eq(param) & _at_target(table, target)]
            if row.empty:
                continue
            part = rows[rows["parameterization"].eq(param)]
            ratio = part["lr"] / row["transferred_lr"].iloc[0]
            part, ratio = part[_in_grid(ratio)], ratio[_in_grid(ratio)]
            color = param_color(param)
            _line(ax, ratio, part[metric], color=color, label=param_label(param))
            ax.plot(1.0, part[np.isclose(ratio, 1.0)][metric].mean(), "*", ms=12, color=color)
        ax.set_title(_target_title(target))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("η / transferred η (★ transferred)")
        ax.grid(alpha=0.3)
    axes[1].set_ylabel(METRIC_LABELS.get(metric, metric))
    axes[-1].legend(fontsize="small")
    return fig


def _at_target(frame: pd.DataFrame, target: pd.Series) -> pd.Series:
    """The rows of ``frame`` at ``target``'s shape and (when known) budget."""
    at = (
        frame["width"].eq(target["width"])
        & np.isclose(frame["density"], target["density"])
        & frame["depth"].eq(target["depth"])
    )
    for column in ("max_steps", "tokens"):
        if not pd.isna(target[column]):
            at &= frame[column].eq(target[column])
    if "budget_rule" in frame:
        at &= frame["budget_rule"].eq(target["budget_rule"])
    return at


def _in_grid(ratio: pd.Series) -> np.ndarray:
    """Whether each η / transferred η is a point of the regret grid (another rule's grid at
    the same target is not)."""
    offsets = np.log2(ratio.to_numpy())[:, None]
    return np.isclose(offsets, np.asarray(OFFSETS)[None, :]).any(axis=1)


def _target_title(target: pd.Series) -> str:
    title = f"width {target['width']}, density {target['density']:g}, depth {target['depth']}"
    if pd.isna(target["max_steps"]):
        return title
    return f"{title}\n{budget_labels(pd.DataFrame([target]))[0]}"


def _regret_bars(ax: Axes, table: pd.DataFrame, targets: pd.DataFrame, params: list[str]) -> None:
    width = 0.8 / len(params)
    for i, param in enumerate(params):
        rows = targets.merge(table[table["parameterization"].eq(param)], how="left")
        x = np.arange(len(targets)) + (i - (len(params) - 1) / 2) * width
        bars = ax.bar(
            x, rows["regret_pct"], width, color=param_color(param), label=param_label(param)
        )
        for bar, flag in zip(bars, rows["flag"], strict=True):
            if flag != "ok":  # edge, partial: a lower bound
                bar.set_hatch("//")
    labels = shape_labels(targets)
    if targets["max_steps"].nunique(dropna=False) > 1 or targets["budget_rule"].nunique() > 1:
        labels = [f"{s}\n{b}" for s, b in zip(labels, budget_labels(targets), strict=True)]
    ax.set_xticks(np.arange(len(targets)), labels, rotation=20)
    ax.axhline(1.0, color="k", ls=":", lw=1)
    ax.set_xlabel("target width × density, depth")
    ax.set_ylabel("regret (% of the tuned loss; hatched: lower bound)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="small")
