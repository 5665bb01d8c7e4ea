"""Calibration figures: the registered calibration metrics (ECE, MCE, NLL, Brier, adaptive and
classwise ECE; reprolib.scores.registry) vs sparsity, reliability diagrams, legacy "ECE".

Reliability diagrams are drawn from the bins stored in each record (metrics.reliability_bins:
counts, mean confidence and accuracy per equal-width bin), decoded from the ledger.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reprolib.errors import ReprolibError
from reprolib.study.ledger import reliability
from reprolib.plots.common import (ARM_ORDER, INTERVAL_NOTE, METRIC_LABELS, REFERENCE, arm_color, density_lines,
                                   interval_yerr, marker_note, network_name, ordered, require, shot_label,
                                   shown_metrics, summarize, trend_rows)


def calibration_vs_sparsity(ledger: pd.DataFrame, n_shot: int = -1, arms: list[str] | None = None,
                            metrics: list[str] | None = None) -> Figure | None:
    """Each calibration metric vs density (IMP levels, or a study's one-shot networks), rows =
    targets, one line per arm: means over seeds with their 95% t intervals as error bars; None
    without such runs at `n_shot`. Default metrics: the registered ones shown in the calibration
    figure that the ledger holds (reprolib.scores.registry)."""
    metrics = shown_metrics(ledger, "calibration_figure") if metrics is None else metrics
    require(ledger, ["target", "arm", "ticket_kind", "density", "n_shot", *metrics], "calibration_vs_sparsity")
    rows = trend_rows(ledger[ledger["n_shot"] == n_shot])
    if arms is not None:
        rows = rows[rows["arm"].isin(arms)]
    if rows.empty or not metrics:
        return None
    targets = sorted(rows["target"].unique())
    fig = Figure(figsize=(3.2 * len(metrics), 2.8 * len(targets)), layout="constrained")
    axes = fig.subplots(len(targets), len(metrics), squeeze=False)
    for i, target in enumerate(targets):
        here = rows[rows["target"] == target]
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            density_lines(ax, here, metric)
            ax.set_title(f"{target} · {METRIC_LABELS[metric]} ({shot_label(n_shot)})", fontsize=9)
            if i == len(targets) - 1:
                ax.set_xlabel("density (%)")
    # Outside the panels, so it never hides a point.
    fig.legend(*axes[0, -1].get_legend_handles_labels(), loc="outside right upper", fontsize=7,
               title=f"arm ({marker_note(rows)})\n" + INTERVAL_NOTE.replace(" (", "\n("), title_fontsize=6)
    return fig


ACCURACY_COLOR, GAP_COLOR, UNDER_COLOR, COUNT_COLOR = "#4c72b0", "#c44e52", "#f3d48a", "#8c8c8c"
ACCURACY_LABEL = "accuracy of the images in the bin\n(the whole bar's height)"
OVER_LABEL = "gap above the bar, up to their mean\nconfidence: over-confident"
UNDER_LABEL = "gap inside the bar, down to their mean\nconfidence: under-confident"
ECE_NOTE = "ECE = sum of gaps x bin share"
# How each element is drawn, shared by the diagram and its legend (so a swatch always looks like its bars).
OVER_STYLE = {"facecolor": GAP_COLOR, "alpha": 0.45, "edgecolor": GAP_COLOR, "hatch": "//", "linewidth": 0.5}
UNDER_STYLE = {"facecolor": UNDER_COLOR, "alpha": 0.9, "edgecolor": GAP_COLOR, "hatch": "//", "linewidth": 0.5}
DIAGONAL_LABEL = "perfect calibration"
COUNT_LABEL = "share of test images per bin"


class ReliabilityDiagram:
    """A reliability diagram in Guo et al.'s form on `ax` and the bin shares on `counts_ax`: its
    artists are made once for the bins' edges and `show` sets them to any run's bins, so the
    explorer redraws by updating bars in place instead of drawing new ones.

    Bars: accuracy per equal-width confidence bin; a hatched bar spans accuracy to the bin's
    mean confidence, red above the bar (over-confident), yellow inside it (under-confident);
    dashed: the diagonal. Every artist carries a legend label. Empty bins are hidden.
    """

    def __init__(self, ax: Axes, edges, counts_ax: Axes | None = None):
        self.ax, self.counts_ax, self.edges = ax, counts_ax, np.asarray(edges, dtype=float)
        centers, width = (self.edges[:-1] + self.edges[1:]) / 2, np.diff(self.edges)
        zero = np.zeros_like(centers)
        self.accuracy = ax.bar(centers, zero, width=width, color=ACCURACY_COLOR, edgecolor="black", linewidth=0.5,
                               label=ACCURACY_LABEL)
        # Under-confident gaps lie inside the accuracy bar: drawn opaque so they do not mix with its blue.
        self.over = ax.bar(centers, zero, width=width, label=OVER_LABEL, zorder=3, **OVER_STYLE)
        self.under = ax.bar(centers, zero, width=width, label=UNDER_LABEL, zorder=3, **UNDER_STYLE)
        (self.diagonal,) = ax.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=1, label=DIAGONAL_LABEL,
                                   gid=REFERENCE)
        ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
        self.counts = None
        if counts_ax is None:
            ax.set_xlabel("confidence")
            return
        ax.tick_params(labelbottom=False)
        self.counts = counts_ax.bar(centers, zero, width=width, color=COUNT_COLOR, edgecolor="black", linewidth=0.5,
                                    label=COUNT_LABEL)
        counts_ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-label probability)", ylabel="share")

    def fits(self, bins: dict[str, list]) -> bool:
        """Whether `bins` have this diagram's edges (else a new diagram is needed)."""
        return np.array_equal(bin_edges(bins), self.edges)

    def remove(self) -> None:
        """Take the diagram's artists off its axes (before a diagram with other bins replaces it)."""
        for bars in (self.accuracy, self.over, self.under, self.counts):
            if bars is not None:
                bars.remove()
        self.diagonal.remove()

    def show(self, bins: dict[str, list], title: str) -> None:
        counts = np.asarray(bins["counts"], dtype=float)
        filled = counts > 0
        accuracy = np.asarray(bins["accuracy"], dtype=float)
        confidence = np.asarray(bins["confidence"], dtype=float)
        over = confidence > accuracy
        low, gap = np.minimum(confidence, accuracy), np.abs(confidence - accuracy)
        _set_bars(self.accuracy, np.zeros_like(accuracy), accuracy, filled)
        _set_bars(self.over, low, gap, filled & over)
        _set_bars(self.under, low, gap, filled & ~over)
        if self.counts is not None:
            _set_bars(self.counts, np.zeros_like(counts), counts / max(counts.sum(), 1.0), np.ones_like(filled))
        self.ax.set_title(title)


def bin_edges(bins: dict[str, list]) -> np.ndarray:
    """The bins' edges (stored, or equal-width on [0, 1])."""
    return np.asarray(bins.get("edges") or np.linspace(0, 1, len(bins["counts"]) + 1), dtype=float)


def _set_bars(bars, bottoms: np.ndarray, heights: np.ndarray, shown: np.ndarray) -> None:
    for rect, bottom, height, visible in zip(bars, bottoms, heights, shown):
        rect.set_y(float(bottom))
        rect.set_height(float(height))
        rect.set_visible(bool(visible))


def draw_reliability(ax: Axes, bins: dict[str, list], title: str, counts_ax: Axes | None = None) -> ReliabilityDiagram:
    """A reliability diagram of `bins` on `ax` (bin shares on `counts_ax`): ReliabilityDiagram, shown once."""
    diagram = ReliabilityDiagram(ax, bin_edges(bins), counts_ax)
    diagram.show(bins, title)
    return diagram


def reliability_axes(fig: Figure, columns: int) -> tuple[list[Axes], list[Axes]]:
    """Diagram axes over count axes, `columns` side by side, all sharing x and (per row) y."""
    grid = fig.add_gridspec(2, columns, height_ratios=[3, 1])
    top = [fig.add_subplot(grid[0, 0])]
    top += [fig.add_subplot(grid[0, c], sharex=top[0], sharey=top[0]) for c in range(1, columns)]
    bottom = [fig.add_subplot(grid[1, 0], sharex=top[0])]
    bottom += [fig.add_subplot(grid[1, c], sharex=top[0], sharey=bottom[0]) for c in range(1, columns)]
    return top, bottom


def add_reliability_legend(fig: Figure) -> None:
    """One legend under the panels naming every element of the diagrams.

    Built from proxy artists styled like the drawn ones, not from a panel's artists: a panel
    with no over-confident bin has an empty gap container, whose default swatch would show
    a colour no bar has."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    bar = {"edgecolor": "black", "linewidth": 0.5}
    handles = [Line2D([], [], color="black", linestyle="--", linewidth=1, label=DIAGONAL_LABEL),
               Patch(facecolor=ACCURACY_COLOR, label=ACCURACY_LABEL, **bar),
               Patch(label=OVER_LABEL, **OVER_STYLE), Patch(label=UNDER_LABEL, **UNDER_STYLE),
               Patch(facecolor=COUNT_COLOR, label=COUNT_LABEL, **bar)]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8, title=ECE_NOTE,
               title_fontsize=8)


def _one_run(rows: pd.DataFrame, what: str) -> pd.Series:
    rows = rows[rows["reliability"].notna()].sort_values("seed")
    if rows.empty:
        raise ReprolibError(f"no run with reliability bins for {what}; run the sweep for it first")
    return rows.iloc[0]


def reliability_pair(ledger: pd.DataFrame, target: str, arm: str, n_shot: int = -1,
                     level: int | None = None, seed: int | None = None) -> Figure | None:
    """Reliability diagrams of the dense model and a sparse network (IMP, or the study's one-shot
    networks; default: the sparsest), side by side on the same axes, bin shares below, one
    legend; None without such runs."""
    require(ledger, ["target", "arm", "ticket_kind", "level", "n_shot", "seed", "reliability", "ece"],
            "reliability_pair")
    rows = trend_rows(ledger)
    rows = rows[(rows["target"] == target) & (rows["arm"] == arm) & (rows["n_shot"] == n_shot)]
    if seed is not None:
        rows = rows[rows["seed"] == seed]
    if rows.empty:
        return None
    level = int(rows["level"].max()) if level is None else level
    fig = Figure(figsize=(8.4, 5.2), layout="constrained")
    diagrams, counts = reliability_axes(fig, 2)
    for ax, counts_ax, lv in zip(diagrams, counts, (0, level)):
        run = _one_run(rows[rows["level"] == lv], f"{target} · {arm} · level {lv}")
        name = network_name(str(run["ticket_kind"]), lv, run["density"])
        draw_reliability(ax, reliability(run), f"{name}\nacc {100 * run['accuracy']:.1f}%  ECE {run['ece']:.3f}",
                         counts_ax)
    add_reliability_legend(fig)
    fig.suptitle(f"{target} · {arm} · {shot_label(n_shot)} · seed {int(run['seed'])} (one run)", fontsize=10)
    return fig


def legacy_vs_real_ece(ledger: pd.DataFrame) -> Figure | None:
    """The public code's logged "ECE" beside the proper ECE of the same runs.

    Left: one point per run, proper ECE on x, legacy value on y (log scale): a calibration
    measure would put the points near the diagonal and keep their order. Right: mean of each
    per arm; the legacy value depends on the logit scale and the test batch size, so arms
    can swap order.
    """
    require(ledger, ["arm", "ece", "legacy_rlt_ece"], "legacy_vs_real_ece")
    rows = ledger[ledger["ece"].notna() & ledger["legacy_rlt_ece"].notna()]
    if rows.empty:
        return None
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax_scatter, ax_bar = fig.subplots(1, 2)
    arms = ordered(rows["arm"].tolist(), ARM_ORDER)
    for arm in arms:
        here = rows[rows["arm"] == arm]
        ax_scatter.scatter(here["ece"], here["legacy_rlt_ece"], s=14, color=arm_color(arm), label=arm, alpha=0.8)
    low = max(min(rows["ece"].min(), rows["legacy_rlt_ece"].min()), 1e-4)
    high = max(rows["ece"].max(), rows["legacy_rlt_ece"].max())
    ax_scatter.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="y = x", gid=REFERENCE)
    ax_scatter.set(xscale="log", yscale="log", xlabel="proper ECE (Guo, probabilities)",
                   ylabel="legacy RLT \"ECE\" (raw logits, per batch)", title="Same runs, two numbers")
    ax_scatter.legend(fontsize=7)
    x = np.arange(len(arms))
    for offset, metric, label, color in ((-0.2, "ece", "proper ECE", "#4c72b0"),
                                         (0.2, "legacy_rlt_ece", "legacy \"ECE\"", "#dd8452")):
        s = summarize(rows, ["arm"], metric).set_index("arm").reindex(arms)
        below, above = interval_yerr(s)
        below = np.minimum(below, 0.999 * s["mean"].to_numpy())   # a log axis has no room below 0
        ax_bar.bar(x + offset, s["mean"], width=0.4, yerr=[below, above], capsize=2, label=label, color=color)
    ax_bar.set_xticks(x, arms)
    ax_bar.set(yscale="log", title="Mean per arm (log scale)\nbars: 95% t interval over the arm's runs")
    ax_bar.legend(fontsize=8)
    for ax in (ax_scatter, ax_bar):
        ax.grid(alpha=0.3)
    return fig
