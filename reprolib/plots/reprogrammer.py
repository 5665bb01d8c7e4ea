"""Reprogrammer figure: one bar group per method, a panel per metric (from reprogrammer_table)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from reprolib.plots.common import empty_figure, require

DEFAULT_COLUMNS = ("id_accuracy", "mean_covariate_accuracy", "mean_auroc", "mean_fpr95")
TITLES = {"id_accuracy": "ID accuracy", "mean_covariate_accuracy": "accuracy under covariate shift",
          "mean_auroc": "OOD detection AUROC (mean)", "mean_fpr95": "FPR at 95% TPR (mean, lower = better)"}


def reprogrammer_bars(table: pd.DataFrame, columns: tuple[str, ...] = DEFAULT_COLUMNS) -> Figure:
    """Bars per method (residual variants labelled with their alpha), one colour per target."""
    columns = tuple(c for c in columns if c in table.columns)
    require(table, ["target", "method"], "reprogrammer_bars")
    if table.empty or not columns:
        return empty_figure("no reprogrammer records")
    labels = [m if pd.isna(a) else f"{m} a={a:g}" for m, a in zip(table["method"], table.get("alpha", [np.nan] * len(table)))]
    frame = table.assign(label=labels)
    methods = list(dict.fromkeys(frame["label"]))
    targets = sorted(frame["target"].unique())
    fig = Figure(figsize=(3.6 * len(columns), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(columns)))
    width = 0.8 / len(targets)
    for ax, column in zip(axes, columns):
        for k, target in enumerate(targets):
            values = frame[frame["target"] == target].set_index("label")[column].reindex(methods)
            ax.bar(np.arange(len(methods)) + (k - (len(targets) - 1) / 2) * width, values, width=width, label=target)
        ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=7)
        ax.set(title=TITLES.get(column, column), ylim=(0, 1))
        ax.grid(alpha=0.3, axis="y")
    axes[-1].legend(fontsize=7)
    return fig
