"""Calibration figures: ECE/MCE/NLL/Brier vs sparsity, reliability diagrams, legacy "ECE".

Reliability diagrams are drawn from the bins stored in each record (metrics.reliability_bins:
counts, mean confidence and accuracy per equal-width bin), decoded from the ledger.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reprolib.errors import ReprolibError
from reprolib.ledger import reliability
from reprolib.plots.common import (ARM_ORDER, METRIC_LABELS, arm_color, density_lines, empty_figure, imp_rows,
                                   ordered, require, shot_label)

CALIBRATION_METRICS = ["ece", "mce", "nll", "brier"]


def calibration_vs_sparsity(ledger: pd.DataFrame, n_shot: int = -1, arms: list[str] | None = None,
                            metrics: list[str] = CALIBRATION_METRICS) -> Figure:
    """Each calibration metric vs density (IMP levels), rows = targets, one line per arm."""
    require(ledger, ["target", "arm", "ticket_kind", "density", "n_shot", *metrics], "calibration_vs_sparsity")
    rows = imp_rows(ledger[ledger["n_shot"] == n_shot])
    if arms is not None:
        rows = rows[rows["arm"].isin(arms)]
    if rows.empty:
        return empty_figure(f"no IMP runs with n_shot={n_shot}")
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
    axes[0, -1].legend(fontsize=7)
    return fig


def draw_reliability(ax: Axes, bins: dict[str, list], title: str) -> None:
    """Accuracy per confidence bin (bars) against the diagonal; the gap is shaded red."""
    counts = np.asarray(bins["counts"], dtype=float)
    n = len(counts)
    edges = np.asarray(bins.get("edges") or np.linspace(0, 1, n + 1), dtype=float)
    centers, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    accuracy = np.where(counts > 0, np.asarray(bins["accuracy"], dtype=float), 0.0)
    confidence = np.where(counts > 0, np.asarray(bins["confidence"], dtype=float), np.nan)
    ax.bar(centers, accuracy, width=width, edgecolor="black", linewidth=0.5, color="#4c72b0", label="accuracy")
    gap = np.where(counts > 0, confidence - accuracy, 0.0)
    ax.bar(centers, gap, bottom=accuracy, width=width, color="#dd8452", alpha=0.6, label="gap to confidence")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    share = ax.twinx()
    share.step(edges[:-1], counts / max(counts.sum(), 1), where="post", color="black", alpha=0.35, linewidth=0.8)
    share.set_ylim(0, 1)
    share.set_yticks([])
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=title)


def _one_run(rows: pd.DataFrame, what: str) -> pd.Series:
    rows = rows[rows["reliability"].notna()].sort_values("seed")
    if rows.empty:
        raise ReprolibError(f"no run with reliability bins for {what}; run the sweep for it first")
    return rows.iloc[0]


def reliability_pair(ledger: pd.DataFrame, target: str, arm: str, n_shot: int = -1,
                     level: int | None = None, seed: int | None = None) -> Figure:
    """Reliability diagrams of the dense model and an IMP ticket (default: the sparsest), side by side."""
    require(ledger, ["target", "arm", "ticket_kind", "level", "n_shot", "seed", "reliability", "ece"],
            "reliability_pair")
    rows = imp_rows(ledger)
    rows = rows[(rows["target"] == target) & (rows["arm"] == arm) & (rows["n_shot"] == n_shot)]
    if seed is not None:
        rows = rows[rows["seed"] == seed]
    if rows.empty:
        return empty_figure(f"no IMP runs for {target} · {arm} · {shot_label(n_shot)}")
    level = int(rows["level"].max()) if level is None else level
    fig = Figure(figsize=(8.4, 3.8), layout="constrained")
    for ax, lv in zip(fig.subplots(1, 2), (0, level)):
        run = _one_run(rows[rows["level"] == lv], f"{target} · {arm} · level {lv}")
        name = "dense" if lv == 0 else f"IMP level {lv} ({100 * float(run['density']):.1f}% dense)"
        draw_reliability(ax, reliability(run), f"{name}\nacc {100 * run['accuracy']:.1f}%  ECE {run['ece']:.3f}")
    fig.suptitle(f"{target} · {arm} · {shot_label(n_shot)} · seed {int(run['seed'])}", fontsize=10)
    return fig


def legacy_vs_real_ece(ledger: pd.DataFrame) -> Figure:
    """The public code's logged "ECE" beside the proper ECE of the same runs.

    Left: one point per run, proper ECE on x, legacy value on y (log scale): a calibration
    measure would put the points near the diagonal and keep their order. Right: mean of each
    per arm; the legacy value depends on the logit scale and the test batch size, so arms
    can swap order.
    """
    require(ledger, ["arm", "ece", "legacy_rlt_ece"], "legacy_vs_real_ece")
    rows = ledger[ledger["ece"].notna() & ledger["legacy_rlt_ece"].notna()]
    if rows.empty:
        return empty_figure("no runs with both the proper and the legacy ECE")
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    ax_scatter, ax_bar = fig.subplots(1, 2)
    arms = ordered(rows["arm"].tolist(), ARM_ORDER)
    for arm in arms:
        here = rows[rows["arm"] == arm]
        ax_scatter.scatter(here["ece"], here["legacy_rlt_ece"], s=14, color=arm_color(arm), label=arm, alpha=0.8)
    low = max(min(rows["ece"].min(), rows["legacy_rlt_ece"].min()), 1e-4)
    high = max(rows["ece"].max(), rows["legacy_rlt_ece"].max())
    ax_scatter.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="y = x")
    ax_scatter.set(xscale="log", yscale="log", xlabel="proper ECE (Guo, probabilities)",
                   ylabel="legacy RLT \"ECE\" (raw logits, per batch)", title="Same runs, two numbers")
    ax_scatter.legend(fontsize=7)
    means = rows.groupby("arm")[["ece", "legacy_rlt_ece"]].mean().reindex(arms)
    x = np.arange(len(arms))
    ax_bar.bar(x - 0.2, means["ece"], width=0.4, label="proper ECE", color="#4c72b0")
    ax_bar.bar(x + 0.2, means["legacy_rlt_ece"], width=0.4, label="legacy \"ECE\"", color="#dd8452")
    ax_bar.set_xticks(x, arms)
    ax_bar.set(yscale="log", title="Mean per arm (log scale)")
    ax_bar.legend(fontsize=8)
    for ax in (ax_scatter, ax_bar):
        ax.grid(alpha=0.3)
    return fig
