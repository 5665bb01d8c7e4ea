"""Reprogrammer figure: one panel per metric, one row of bars per method, a colour per target.

Horizontal bars, so every method's name reads level under the first panel; the legend sits
outside the panels, never over a bar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from reprolib.plots.common import REFERENCE, require
from reprolib.reprogrammer.methods import METHODS, get_method

DEFAULT_COLUMNS = ("id_accuracy", "mean_covariate_accuracy", "mean_auroc", "mean_fpr95")
TITLES = {"id_accuracy": "ID accuracy", "mean_covariate_accuracy": "accuracy under covariate shift",
          "mean_auroc": "OOD detection AUROC (mean; 0.5 = chance)", "mean_fpr95": "FPR at 95% TPR (mean, lower = better)"}


def method_label(method: str, alpha: float) -> str:
    """'residual, a = 0.4' for the residual variant, the method's label (its entry's) otherwise."""
    name = get_method(method).label if method in METHODS else method.replace("_", " ")
    return name if pd.isna(alpha) else f"{name}, α = {alpha:g}"


def reprogrammer_bars(table: pd.DataFrame, columns: tuple[str, ...] = DEFAULT_COLUMNS) -> Figure | None:
    """Bars per method (residual variants labelled with their alpha), one colour per target;
    None without records."""
    columns = tuple(c for c in columns if c in table.columns)
    require(table, ["target", "method"], "reprogrammer_bars")
    if table.empty or not columns:
        return None
    alphas = table["alpha"] if "alpha" in table else pd.Series(np.nan, index=table.index)
    frame = table.assign(label=[method_label(m, a) for m, a in zip(table["method"], alphas)])
    methods = list(dict.fromkeys(frame["label"]))
    targets = sorted(frame["target"].unique())
    fig = Figure(figsize=(2.9 * len(columns) + 1.4, 0.9 + 0.22 * len(methods) * len(targets)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(columns), sharey=True))
    height = 0.8 / len(targets)
    positions = np.arange(len(methods))[::-1]   # first method on top
    for ax, column in zip(axes, columns):
        for k, target in enumerate(targets):
            values = frame[frame["target"] == target].set_index("label")[column].reindex(methods)
            ax.barh(positions - (k - (len(targets) - 1) / 2) * height, values, height=height, label=target)
        if "auroc" in column:
            ax.axvline(0.5, color="grey", linestyle="--", linewidth=1, gid=REFERENCE)   # chance
        ax.set(title=TITLES.get(column, column), xlim=(0, 1))
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(positions, methods, fontsize=8)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=8, title="target")
    return fig
