"""Accuracy figures: upstream tickets, accuracy vs sparsity, few-shot, SMM vs prompts, OOD.

Every function takes the ledger (or the tickets table) and returns a Figure; accuracies are
stored as fractions and drawn in percent. Error bars are 95% t intervals over seeds
(reprolib.study.stats; a point with one run has no bar), as each figure's legend says.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from reprolib.transfer import registry as method_registry
from reprolib.plots.common import (ARM_ORDER, INTERVAL_NOTE, KIND_MARKERS, MARKER_NAMES, REFERENCE, arm_color,
                                   density_lines, density_ticks, full_data_last, interval_yerr, marker_note,
                                   network_name, ordered, percent_ticks, require, shot_label, sparse_kind, summarize,
                                   trend_rows)

# The prompt-comparison figure's arms and tick labels (the method registry's Arm.short / Arm.panel).
SMM_PROMPTS = {arm.name: arm.short for arm in sorted((a for a in method_registry.arms() if a.panel is not None),
                                                     key=lambda a: a.panel)}


UPSTREAM_PANELS = {   # column -> (y label, title); the first with values is drawn beside the density
    "upstream_accuracy": ("upstream test accuracy (%)", "Upstream accuracy"),
    "agreement_with_dense": ("top-1 agreement with dense (%)", "Agreement with dense (a proxy, not an accuracy)")}


def upstream_per_level(tickets: pd.DataFrame) -> Figure | None:
    """Upstream test accuracy (or, for one-shot networks without it, top-1 agreement with the
    dense network) and density per pruning level, one line per kind (further ticket replicates:
    thin lines of the same kind, one legend entry); None without tickets."""
    require(tickets, ["ticket_kind", "level", "density", "upstream_accuracy"], "upstream_per_level")
    if tickets.empty:
        return None
    measured = [c for c in UPSTREAM_PANELS if c in tickets and pd.to_numeric(tickets[c], errors="coerce").notna().any()]
    fig = Figure(figsize=(10 if measured else 5.5, 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, 2 if measured else 1))
    ax_acc, ax_den = (axes[0], axes[1]) if measured else (None, axes[0])
    replicate = tickets["replicate"] if "replicate" in tickets else pd.Series(1, index=tickets.index)
    for kind in ordered(tickets["ticket_kind"].tolist(), list(KIND_MARKERS)):
        for copy in sorted(replicate[tickets["ticket_kind"] == kind].unique()):
            rows = tickets[(tickets["ticket_kind"] == kind) & (replicate == copy)].sort_values("level")
            label = kind if copy == 1 else (f"{kind}, replicates 2-{replicate.max()}" if copy == 2 else None)
            style = dict(marker=KIND_MARKERS.get(kind, "o"), label=label, linestyle="-" if len(rows) > 1 else "none",
                         **({} if copy == 1 else {"linewidth": 0.7, "markersize": 3, "alpha": 0.6}))
            if measured:
                ax_acc.plot(rows["level"], 100 * pd.to_numeric(rows[measured[0]], errors="coerce"), **style)
            ax_den.plot(rows["level"], 100 * rows["density"].astype(float), **style)
    levels = sorted(tickets["level"].unique())
    ax_den.plot(levels, [100 * 0.8 ** lv for lv in levels], color="grey", linestyle=":", label="0.8^level", gid=REFERENCE)
    if measured:
        ylabel, title = UPSTREAM_PANELS[measured[0]]
        ax_acc.set(xlabel="pruning level", ylabel=ylabel, title=title)
    ax_den.set(xlabel="pruning level", ylabel="density (% of prunable weights)", title="Density", yscale="log")
    percent_ticks(ax_den.yaxis, 100 * tickets["density"].astype(float))
    for ax in [a for a in (ax_acc, ax_den) if a is not None]:
        ax.set_xticks(levels)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def _baseline_points(ax, rows: pd.DataFrame, arm: str, metric: str, scale: float) -> None:
    """Networks off the trend line (magnitude / random baselines beside IMP tickets) as lone
    markers at their density (mean and 95% interval over seeds)."""
    for kind, marker in KIND_MARKERS.items():
        if kind in ("imp", sparse_kind(rows)):
            continue
        base = rows[rows["ticket_kind"] == kind]
        if base.empty:
            continue
        s = summarize(base, ["density"], metric)
        ax.errorbar(100 * s["density"], scale * s["mean"], yerr=interval_yerr(s, scale), marker=marker,
                    color=arm_color(arm), linestyle="none", mfc="white", capsize=2)


def metric_vs_sparsity(ledger: pd.DataFrame, metric: str = "accuracy", n_shot: int = -1,
                       arms: list[str] | None = None, ylabel: str | None = None) -> Figure | None:
    """`metric` vs density, one panel per target, one line per arm (IMP; baselines as markers)."""
    require(ledger, ["target", "arm", "ticket_kind", "density", "n_shot", metric], "metric_vs_sparsity")
    rows = ledger[(ledger["n_shot"] == n_shot) & ledger[metric].notna()]
    if arms is not None:
        rows = rows[rows["arm"].isin(arms)]
    if rows.empty:
        return None
    targets = sorted(rows["target"].unique())
    fig = Figure(figsize=(4.2 * len(targets), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(targets), sharey=True))
    scale = 100.0 if metric == "accuracy" else 1.0
    for ax, target in zip(axes, targets):
        here = rows[rows["target"] == target]
        density_lines(ax, trend_rows(here), metric, scale)
        for arm in ordered(here["arm"].tolist(), ARM_ORDER):
            _baseline_points(ax, here[here["arm"] == arm], arm, metric, scale)
        # Ticks at every density drawn, baselines' included (a study whose sparse networks are
        # all one-shot, like imagenet-lite, would otherwise label only the dense point).
        density_ticks(ax, here["density"])
        ax.set(title=f"{target} ({shot_label(n_shot)})", xlabel="density (%) - sparser to the right")
    axes[0].set_ylabel(ylabel or ("accuracy (%)" if metric == "accuracy" else metric))
    # Outside the panels, so it never hides a point.
    off_trend = [MARKER_NAMES[KIND_MARKERS[k]] + " " + k for k in KIND_MARKERS
                 if k not in ("imp", sparse_kind(rows)) and (rows["ticket_kind"] == k).any()]
    fig.legend(*axes[-1].get_legend_handles_labels(), loc="outside right upper", fontsize=8,
               title=f"arm ({', '.join([marker_note(trend_rows(rows)), *off_trend])})\n{INTERVAL_NOTE}",
               title_fontsize=7)
    return fig


def accuracy_vs_sparsity(ledger: pd.DataFrame, n_shot: int = -1, arms: list[str] | None = None) -> Figure | None:
    """Target accuracy vs density per target: LP vs VP vs SMM, mean and 95% interval over seeds."""
    return metric_vs_sparsity(ledger, "accuracy", n_shot=n_shot, arms=arms)


def few_shot(ledger: pd.DataFrame, arms: list[str] | None = None) -> Figure | None:
    """Accuracy vs n-shot, one line per level (IMP, or a study's one-shot networks); rows = targets, columns = arms."""
    require(ledger, ["target", "arm", "ticket_kind", "level", "n_shot", "accuracy"], "few_shot")
    rows = trend_rows(ledger)
    if arms is not None:
        rows = rows[rows["arm"].isin(arms)]
    if rows.empty or rows["n_shot"].nunique() < 1:
        return None
    targets, arm_list = sorted(rows["target"].unique()), ordered(rows["arm"].tolist(), ARM_ORDER)
    shots = full_data_last(rows["n_shot"].unique())
    fig = Figure(figsize=(3.2 * len(arm_list), 2.8 * len(targets)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(targets), len(arm_list), sharey=True, squeeze=False))
    levels = sorted(rows["level"].unique())
    colors = {lv: c for lv, c in zip(levels, _level_colors(len(levels)))}
    for i, target in enumerate(targets):
        for j, arm in enumerate(arm_list):
            ax = axes[i, j]
            here = rows[(rows["target"] == target) & (rows["arm"] == arm)]
            for level in levels:
                s = summarize(here[here["level"] == level], ["n_shot"], "accuracy")
                s = s.set_index("n_shot").reindex(shots)
                ax.errorbar(range(len(shots)), 100 * s["mean"], yerr=interval_yerr(s, 100), marker="o",
                            color=colors[level], label=f"level {level}", capsize=2)
            ax.set_xticks(range(len(shots)), [shot_label(n).replace("-shot", "") for n in shots])
            for k in capped_positions(here, shots):
                ax.axvspan(k - 0.35, k + 0.35, facecolor="none", edgecolor="grey", hatch="//", linewidth=0)
            ax.set_title(f"{target} · {arm}", fontsize=9)
            ax.grid(alpha=0.3)
            if i == len(targets) - 1:
                ax.set_xlabel("shots per class")
        axes[i, 0].set_ylabel("accuracy (%)")
    axes[0, -1].legend(fontsize=7, title=INTERVAL_NOTE.replace(" (", "\n("), title_fontsize=6)
    if capped_positions(rows, shots):
        fig.supxlabel(CAPPED_NOTE, fontsize=7)
    return fig


CAPPED_NOTE = ("hatched: n_shot exceeds some classes' training images; those classes keep all of them "
               "(RLT's behaviour, docs/methods.md s.8), so fewer shots were used than the label says")


def capped_positions(rows: pd.DataFrame, shots: list) -> list[int]:
    """Positions in `shots` whose runs were capped (ledger column `capped` > 0; none without it)."""
    if "capped" not in rows:
        return []
    capped = rows[pd.to_numeric(rows["capped"], errors="coerce").fillna(0) > 0]["n_shot"].unique()
    return [k for k, n in enumerate(shots) if n in set(capped.tolist())]


def _level_colors(n: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return [cmap(x) for x in np.linspace(0.0, 0.9, max(n, 1))]


def smm_vs_prompts(ledger: pd.DataFrame, n_shot: int = -1) -> Figure | None:
    """SMM vs pad / narrow / medium / full prompts, dense (level 0) beside the sparsest network
    (IMP, or the study's one-shot networks); None without such runs."""
    require(ledger, ["target", "arm", "ticket_kind", "level", "n_shot", "accuracy"], "smm_vs_prompts")
    rows = trend_rows(ledger)
    rows = rows[(rows["n_shot"] == n_shot) & rows["arm"].isin(list(SMM_PROMPTS))]
    if rows.empty:
        return None
    sparse_level = int(rows["level"].max())
    targets = sorted(rows["target"].unique())
    fig = Figure(figsize=(4.5 * len(targets), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(targets), sharey=True))
    for ax, target in zip(axes, targets):
        here = rows[rows["target"] == target]
        arms = [a for a in SMM_PROMPTS if a in set(here["arm"])]
        sparse = network_name(str(rows.loc[rows["level"] == sparse_level, "ticket_kind"].iloc[0]), sparse_level)
        for k, (level, label) in enumerate([(0, "dense"), (sparse_level, sparse)]):
            s = summarize(here[here["level"] == level], ["arm"], "accuracy").set_index("arm").reindex(arms)
            ax.bar(np.arange(len(arms)) + (k - 0.5) * 0.38, 100 * s["mean"], width=0.38,
                   yerr=interval_yerr(s, 100), capsize=2, label=label, alpha=0.85 if k == 0 else 0.55)
        ax.set_xticks(range(len(arms)), [SMM_PROMPTS[a] for a in arms])
        ax.set(title=f"{target} ({shot_label(n_shot)})")
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("accuracy (%)")
    axes[-1].legend(fontsize=8, title=INTERVAL_NOTE.replace(" (", "\n("), title_fontsize=7)
    return fig
