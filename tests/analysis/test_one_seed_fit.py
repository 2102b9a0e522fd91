"""A fit with one seed has no intervals (null in fit.json): report and plots still draw it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd

from hptransfer.analysis import plots, report


def test_optimum_without_interval_is_reported_and_marked():
    row = {"log2": -7.12, "argmin_log2": -7.0, "ci95_lo": None, "ci95_hi": None}
    row |= {"ci95_cut": "none", "flag": "ok", "value": 2**-7.12, "loss": 5.9}
    assert report._cell(pd.Series(row)) == "2^-7.12 (2^-7)"
    fig, ax = plt.subplots()
    plots._mark_optima(ax, pd.DataFrame([row]), "black")
    assert len(ax.containers) == 1  # the star drawn, without an error bar
    plt.close(fig)
