"""Figures of a sweep: HP stability, optimum vs density/width, training curves.

Every ``plot_*`` function takes DataFrames (as read from the store or made by
:mod:`hptransfer.analysis.fit`) and returns a matplotlib :class:`~matplotlib.figure.Figure`
drawn on the Agg canvas (no pyplot, no global state), so the notebook reuses them;
:func:`write_plots` draws everything for a sweep folder into ``<sweep>/plots/`` as PNG and SVG,
:func:`plot_command` is a whole ``hptransfer plot``.

Transferred runs (``transfer.parquet``: ``trial_id, parameterization, width, density``, plus
``transfer_curves.parquet``: ``trial_id, step, <loss>``) are drawn when present.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hptransfer.analysis import fit as fitting
from hptransfer.analysis import results
from hptransfer.analysis.names import HP_LABELS, METRIC_LABELS, param_color
from hptransfer.analysis.regret import read_regret
from hptransfer.analysis.tuning_plots import tuning_figures
from hptransfer.param import param_label, param_order
from hptransfer.store import Location, atomic_write, location
from hptransfer.store.folder import PLOTS_DIR, TRANSFER_CURVES_FILE, TRANSFER_FILE

FORMATS = ("png", "svg")
TRANSFER_COLUMNS = ("trial_id", "parameterization", "width", "density")
# Axes that split figures (one figure per value) in the HP-stability plot.
FIGURE_AXES = ("model", "depth", "width", "readout_zero_init")


def new_figure(n_panels: int, title: str, panel_width: float = 4.2) -> tuple[Figure, list[Axes]]:
    """A row of ``n_panels`` panels sharing the y axis, on the Agg canvas."""
    fig = Figure(figsize=(panel_width * n_panels + 0.6, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(1, n_panels, sharey=True, squeeze=False)[0])
    fig.suptitle(title)
    return fig, axes


def _density_colors(densities: np.ndarray) -> dict[float, Any]:
    from matplotlib import colormaps

    ordered = sorted(densities, reverse=True)
    cmap = colormaps["viridis"]
    return {d: cmap(i / max(len(ordered) - 1, 1) * 0.9) for i, d in enumerate(ordered)}


def width_tied_to_density(table: pd.DataFrame) -> bool:
    """Each density has one width and each width one density, several of each: the shapes of
    an iso-parameter study. Its figures then follow density alone, with widths in labels."""
    shapes = table[["width", "density"]].drop_duplicates()
    return len(shapes) > 1 and shapes["width"].is_unique and shapes["density"].is_unique


def _density_label(part: pd.DataFrame, density: float) -> str:
    widths = part.loc[part["density"].eq(density), "width"].unique()
    return f"{density:g}" if part["width"].nunique() == 1 else f"{density:g} (width {widths[0]})"


def _split(table: pd.DataFrame, axes: list[str]) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """(values of ``axes``, rows) for each combination, or one ({}, table) without axes."""
    if not axes:
        yield {}, table
        return
    for key, part in table.groupby(axes, sort=True):
        yield dict(zip(axes, key, strict=True)), part


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {fitting.format_value(v)}" for k, v in values.items())


def _in_parentheses(values: dict[str, Any]) -> str:
    return f" ({_describe(values)})" if values else ""


def _legend(axes: list[Axes], title: str | None = None) -> None:
    """One legend, on the last panel, of every labelled line in any panel (a panel may lack
    some: e.g. SμPar has no run where it is μP)."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    axes[-1].legend(entries.values(), entries.keys(), title=title, fontsize="small")


def _stem(prefix: str, values: dict[str, Any]) -> str:
    return "_".join([prefix, *(f"{k}{fitting.format_value(v)}" for k, v in values.items())])


def _select(table: pd.DataFrame, values: dict[str, Any]) -> pd.DataFrame:
    """Rows of ``table`` whose columns equal ``values``."""
    keep = np.ones(len(table), dtype=bool)
    for column, value in values.items():
        keep &= table[column].eq(value).to_numpy()
    return table[keep]


# ---------------------------------------------------------------------------- HP stability


def plot_hp_stability(
    points: pd.DataFrame, optima: pd.DataFrame, hp: str, metric: str, title: str
) -> Figure:
    """Loss vs ``hp`` (log2 axis): a panel per parameterization, a line per density.

    ``points``: seed-level rows (``density, parameterization, value, loss``) of one figure;
    the band is the spread over seeds (min–max) of the finite losses, the star the fitted
    optimum with its interval (hollow when flagged); unstable points (past a loss jump or a
    divergence, see :mod:`hptransfer.analysis.optimum`) are crosses on a dotted line.
    """
    params = param_order(points["parameterization"])
    fig, axes = new_figure(len(params), title)
    colors = _density_colors(points["density"].unique())
    finite = points[np.isfinite(points["loss"].astype(float))]
    for ax, param in zip(axes, params, strict=True):
        for density, part in finite[finite["parameterization"].eq(param)].groupby("density"):
            stats = part.groupby("value")["loss"].agg(["mean", "min", "max"]).reset_index()
            color = colors[density]
            rows = optima[optima["parameterization"].eq(param) & optima["density"].eq(density)]
            stable = _stable_mask(stats["value"], rows)
            label = _density_label(points, density)
            ax.plot(stats["value"], stats["mean"], ":", color=color)
            ax.plot(
                stats["value"], stats["mean"].where(stable), "o-", ms=3, color=color, label=label
            )
            ax.plot(stats["value"], stats["mean"].where(~stable), "x", ms=5, color=color,
                    label="unstable" if (~stable).any() else None)  # fmt: skip
            ax.fill_between(stats["value"], stats["min"], stats["max"], color=color, alpha=0.2)
            _mark_optima(ax, rows, color)
        ax.set_xscale("log", base=2)
        ax.set_title(param_label(param))
        ax.set_xlabel(HP_LABELS.get(hp, hp))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(METRIC_LABELS.get(metric, metric))
    _legend(axes, title="density")
    return fig


def _stable_mask(values: pd.Series, optima: pd.DataFrame) -> np.ndarray:
    """Which HP ``values`` lie in the stable range of the (first) optimum row, if any."""
    if optima.empty or "stable_lo" not in optima:
        return np.ones(len(values), dtype=bool)
    row = optima.iloc[0]
    return (
        (values >= row.stable_lo * (1 - 1e-9)) & (values <= row.stable_hi * (1 + 1e-9))
    ).to_numpy()


def _mark_optima(ax: Axes, optima: pd.DataFrame, color: Any) -> None:
    for row in optima.itertuples():
        err = None
        if pd.notna(row.ci95_lo):  # None in fit.json when a fit has no interval (1 seed)
            err = [[row.value - row.ci95_lo], [row.ci95_hi - row.value]]
        face = color if row.flag == "ok" else "none"
        ax.errorbar(
            row.value,
            row.loss,
            xerr=err,
            fmt="*",
            ms=11,
            color=color,
            mfc=face,
            capsize=3,
            zorder=5,
        )


def hp_stability_figures(
    points: pd.DataFrame, optima: pd.DataFrame, metric: str
) -> Iterator[tuple[str, Figure]]:
    """(file stem, figure) per searched HP and per model/depth/width combination."""
    split_by = [a for a in FIGURE_AXES if a == "width" or (a in points and points[a].nunique() > 1)]
    if width_tied_to_density(points):
        split_by.remove("width")
    for hp, hp_points in points.groupby("hp", sort=True):
        for values, part in _split(hp_points, split_by):
            title = f"{metric} vs {HP_LABELS.get(hp, hp)}{_in_parentheses(values)}"
            rows = _select(optima, {"hp": hp, **values})
            yield (
                _stem(f"hp_stability_{hp}", values),
                plot_hp_stability(part, rows, hp, metric, title),
            )


# ---------------------------------------------------------------------------- optimum vs axis


def plot_optimum_vs(optima: pd.DataFrame, axis: str, hp: str) -> Figure:
    """Fitted optimum of ``hp`` vs ``axis`` (width, density or depth), a line per
    parameterization.

    One panel per combination of the other swept axes; error bars are 95% intervals; hollow
    markers are flagged optima (edge/flat: not a located minimum).
    """
    rows = optima[optima["hp"].eq(hp)]
    swept = [a for a in results.GROUP_AXES[1:] if a in rows and rows[a].nunique() > 1]
    tied = {"width", "density"} if width_tied_to_density(rows) else set()
    panels = list(_split(rows, [a for a in swept if a != axis and a not in tied]))
    title = f"optimal {HP_LABELS.get(hp, hp)} vs {axis}"
    fig, axes = new_figure(len(panels), title)
    for ax, (values, part) in zip(axes, panels, strict=True):
        for param in param_order(part["parameterization"]):
            line = part[part["parameterization"].eq(param)].sort_values(axis)
            _optimum_line(ax, line, axis, param)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        if axis == "density":
            ax.invert_xaxis()  # dense on the left, sparser to the right
        ax.set_title(_describe(values))
        ax.set_xlabel(_axis_label(axis, tied))
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(f"optimal {HP_LABELS.get(hp, hp)}")
    _legend(axes)
    return fig


def _axis_label(axis: str, tied: set[str]) -> str:
    if axis == "width":
        return "width (d_model / hidden units)"
    if axis == "depth":
        return "depth (residual blocks)"
    return "density (each with its own width)" if tied else "density"


def optimum_figures(optima: pd.DataFrame, hps: list[str]) -> Iterator[tuple[str, Figure]]:
    """(file stem, figure) of the optimum of each HP vs density, width and depth, where
    swept (its drift along that axis)."""
    axes = ("density", "depth") if width_tied_to_density(optima) else ("density", "width", "depth")
    for axis in axes:
        if optima[axis].nunique() > 1:
            for hp in hps:
                yield f"optimum_{hp}_vs_{axis}", plot_optimum_vs(optima, axis, hp)


def _optimum_line(ax: Axes, line: pd.DataFrame, axis: str, param: str) -> None:
    color = param_color(param)
    err = np.vstack([line["value"] - line["ci95_lo"], line["ci95_hi"] - line["value"]])
    ax.errorbar(
        line[axis],
        line["value"],
        yerr=np.nan_to_num(err),
        fmt="-",
        color=color,
        capsize=3,
        label=param_label(param),
    )
    ok = line["flag"].eq("ok")
    ax.plot(line.loc[ok, axis], line.loc[ok, "value"], "o", color=color)
    ax.plot(line.loc[~ok, axis], line.loc[~ok, "value"], "o", color=color, mfc="none")


# ---------------------------------------------------------------------------- training curves


def plot_training_curves(
    curves: pd.DataFrame, runs: pd.DataFrame, panel: str, line: str, metric: str, title: str
) -> Figure:
    """Loss vs step of ``runs`` (joined to ``curves`` on trial_id), mean over seeds.

    One panel per value of column ``panel``, one line per value of ``line``; colours follow
    the parameterization when ``line`` is ``parameterization``, else a density-like ramp.
    """
    data = curves.merge(runs[["trial_id", panel, line]], on="trial_id")
    data = data[np.isfinite(data[metric].astype(float))]
    panels = _ordered(panel, data[panel])
    fig, axes = new_figure(len(panels), title)
    colors = _density_colors(data[line].unique()) if line != "parameterization" else {}
    for ax, value in zip(axes, panels, strict=True):
        in_panel = data[data[panel].eq(value)]
        for key in _ordered(line, in_panel[line]):
            mean = in_panel[in_panel[line].eq(key)].groupby("step")[metric].mean()
            color = colors.get(key, param_color(key))
            ax.plot(mean.index, mean.to_numpy(), color=color, label=_label(line, key))
        ax.set_title(_label(panel, value))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(METRIC_LABELS.get(metric, metric))
    _legend(axes, title=line)
    return fig


def _ordered(column: str, values: pd.Series) -> list[Any]:
    return param_order(values) if column == "parameterization" else sorted(set(values))


def _label(column: str, value: Any) -> str:
    return param_label(value) if column == "parameterization" else fitting.format_value(value)


def best_trials(trials: pd.DataFrame, settings: fitting.FitSettings) -> pd.DataFrame:
    """Per group, the usable trials (all seeds) at the configuration with the lowest loss."""
    usable, _ = fitting.usable_mask(trials, settings.metric)
    rows = trials[usable]
    axes = fitting.group_axes(rows)
    config = [*axes, *fitting.searched_hps(trials)]
    mean = rows.groupby(config, dropna=False)[settings.metric].transform("mean")
    best = mean.groupby([rows[a] for a in axes], dropna=False).transform("min")
    return rows[mean.eq(best)]


def sweep_curve_figures(
    curves: pd.DataFrame, trials: pd.DataFrame, settings: fitting.FitSettings
) -> Iterator[tuple[str, Figure]]:
    """Training curves of each group's best configuration: a figure per width."""
    runs = best_trials(trials, settings)
    for values, part in _split(runs, ["width"]):
        title = f"training curves at each group's best HPs{_in_parentheses(values)}"
        yield (
            _stem("curves", values),
            plot_training_curves(
                curves, part, "parameterization", "density", settings.metric, title
            ),
        )


def transfer_curve_figure(curves: pd.DataFrame, runs: pd.DataFrame, metric: str) -> Figure:
    """Transferred runs against their baselines: a panel per target shape."""
    target = (
        "width " + runs["width"].astype(str) + ", density " + runs["density"].map("{:g}".format)
    )
    title = "transferred runs: training curves per target"
    return plot_training_curves(
        curves, runs.assign(target=target), "target", "parameterization", metric, title
    )


# ---------------------------------------------------------------------------- writing


def save_figure(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write ``fig`` as ``out_dir/stem.png`` and ``.svg``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.{fmt}" for fmt in FORMATS]
    for path in paths:
        write_figure(fig, path, dpi=150)
    return paths


def write_figure(fig: Figure, path: Path, dpi: int) -> None:
    """Write ``fig`` atomically, in the format of ``path``'s suffix; the same figure gives the
    same bytes (no date, SVG element ids from a fixed salt), so a re-plot changes no file
    whose content did not change."""
    fmt = path.suffix.removeprefix(".")
    metadata = {"Date": None} if fmt == "svg" else None
    with matplotlib.rc_context({"svg.hashsalt": "hptransfer"}):
        atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi, metadata=metadata))


def sweep_figures(sweep_dir: Path, fit: fitting.Fit) -> Iterator[tuple[str, Figure]]:
    """Every figure of a sweep folder, given its fit."""
    trials = fitting.read_fit_trials(sweep_dir, fit.settings)
    points = fitting.seed_points(trials, fit.settings)
    yield from hp_stability_figures(points, fit.optima, fit.metric)
    yield from optimum_figures(fit.optima, fit.searched_hps)
    curves = results.read_curves(sweep_dir)
    if curves is not None:
        yield from sweep_curve_figures(curves, trials, fit.settings)
    transfer_curves = results.read_curves(sweep_dir, TRANSFER_CURVES_FILE)
    regret = read_regret(sweep_dir)
    runs = None
    if transfer_curves is not None:
        runs = results.read_table(sweep_dir / TRANSFER_FILE, TRANSFER_COLUMNS)
        # A --regret grid's other learning rates are drawn by the regret figure.
        shown = runs if regret is None else runs[runs["lr"].isin(regret["transferred_lr"])]
        yield "transfer_curves", transfer_curve_figure(transfer_curves, shown, fit.metric)
    yield from tuning_figures(trials, fit, runs, regret)


def write_plots(sweep_dir: Path, fit: fitting.Fit) -> list[Path]:
    """Draw every figure of ``sweep_dir`` into ``sweep_dir/plots``; the written paths."""
    out_dir = location(sweep_dir) / PLOTS_DIR
    figures = sweep_figures(location(sweep_dir), fit)
    return [path for stem, fig in figures for path in save_figure(fig, out_dir, stem)]


@dataclass(frozen=True)
class Plotted:
    """What ``hptransfer plot`` did: the figures' paths, and whether fit.json was used (else
    the sweep was fitted in memory: fit.json missing or older than trials.parquet)."""

    paths: list[Path]
    saved_fit: bool


def plot_command(sweep: Location | None, root: Location) -> Plotted:
    """Draw every figure of ``sweep`` (None: the latest sweep under ``root``) into its
    plots/ folder, from its fit.json if current, else from a fit made in memory."""
    sweep_dir = results.find_sweep(sweep, root)
    fit, saved = fitting.current_fit(sweep_dir)
    return Plotted(write_plots(sweep_dir, fit), saved)
