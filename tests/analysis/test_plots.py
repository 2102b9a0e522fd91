"""Figure builders: panels, lines and optimum markers from DataFrames (no files written)."""

from __future__ import annotations

import pandas as pd
from synthetic_sweeps import make_curves, make_trials

from hptransfer.analysis import plots
from hptransfer.analysis.fit import FitSettings, fit_optima, seed_points

FAST = FitSettings(n_boot=100)
TRIALS = make_trials(parameterizations=("supar", "sp", "mup"), widths=(64, 128))


def test_hp_stability_has_a_panel_per_parameterization_in_paper_order() -> None:
    points, optima = seed_points(TRIALS, FAST), fit_optima(TRIALS, FAST)
    figures = dict(plots.hp_stability_figures(points, optima, "val_loss"))
    assert sorted(figures) == ["hp_stability_lr_width128", "hp_stability_lr_width64"]
    axes = figures["hp_stability_lr_width64"].axes
    assert [ax.get_title() for ax in axes] == ["SP", "μP", "SμPar"]
    assert axes[0].get_xscale() == "log" and "learning rate" in axes[0].get_xlabel()
    labels = [t.get_text() for t in axes[-1].get_legend().get_texts()]
    assert labels == ["0.25", "1"]  # one line per density


def test_optimum_vs_density_has_a_line_per_parameterization_and_panel_per_width() -> None:
    fig = plots.plot_optimum_vs(fit_optima(TRIALS, FAST), "density", "lr")
    assert [ax.get_title() for ax in fig.axes] == ["width 64", "width 128"]
    labels = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert labels == ["SP", "μP", "SμPar"]
    assert fig.axes[0].xaxis_inverted()


def test_optimum_vs_depth_is_drawn_where_depth_is_swept() -> None:
    """The depth studies' drift figure: one line per rule set, a panel per other axis."""
    shallow = make_trials(parameterizations=("mup", "supar+completep"), widths=(64,))
    deep = shallow.assign(depth=8, trial_id=shallow["trial_id"] + "d8")
    trials = pd.concat([shallow, deep], ignore_index=True)
    optima = fit_optima(trials, FAST)
    stems = [stem for stem, _ in plots.optimum_figures(optima, ["lr"])]
    assert stems == ["optimum_lr_vs_density", "optimum_lr_vs_depth"]
    fig = plots.plot_optimum_vs(optima, "depth", "lr")
    assert sorted(ax.get_title() for ax in fig.axes) == ["density 0.25", "density 1"]
    assert fig.axes[0].get_xlabel() == "depth (residual blocks)"
    labels = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert labels == ["μP", "SμPar + CompleteP"]
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == [2, 8]


def test_training_curves_of_the_best_configuration() -> None:
    best = plots.best_trials(TRIALS, FAST)
    assert len(best) == 3 * 2 * 2 * 3  # one configuration × 3 seeds per group
    assert best.groupby(["parameterization", "width", "density"])["lr"].nunique().eq(1).all()
    figures = dict(plots.sweep_curve_figures(make_curves(best), TRIALS, FAST))
    assert sorted(figures) == ["curves_width128", "curves_width64"]
    assert len(figures["curves_width64"].axes[0].get_lines()) == 2  # densities


def test_iso_parameter_shapes_are_drawn_along_density_with_widths_in_labels() -> None:
    """Width tied to density ((32, 1), (64, 1/4)): one figure per HP, not one per width."""
    shapes = make_trials(widths=(32, 64), densities=(1.0, 0.25))
    iso = shapes[
        (shapes["width"].eq(32) & shapes["density"].eq(1.0) & shapes["parameterization"].eq("sp"))
        | (shapes["width"].eq(64) & shapes["density"].eq(0.25))
    ]  # SμPar lacks the dense shape (where it is μP): the legend still lists it
    points, optima = seed_points(iso, FAST), fit_optima(iso, FAST)
    figures = dict(plots.hp_stability_figures(points, optima, "val_loss"))
    assert list(figures) == ["hp_stability_lr"]
    labels = [t.get_text() for t in figures["hp_stability_lr"].axes[-1].get_legend().get_texts()]
    assert sorted(labels) == ["0.25 (width 64)", "1 (width 32)"]
    assert "()" not in figures["hp_stability_lr"].texts[0].get_text()
    assert [stem for stem, _ in plots.optimum_figures(optima, ["lr"])] == ["optimum_lr_vs_density"]
    fig = plots.plot_optimum_vs(optima, "density", "lr")
    assert len(fig.axes) == 1 and "own width" in fig.axes[0].get_xlabel()
