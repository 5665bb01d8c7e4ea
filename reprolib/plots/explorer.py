"""The sparsity explorer: any two networks of a study, side by side, over every seed.

A network is one (ticket kind, level, imported name) of the ledger: the dense model (IMP level
0), IMP tickets, magnitude and random baselines, one-shot pruned networks of a pretrained
backbone, imported tickets. `explorer_choices` lists what a ledger holds; `comparison` takes
two networks on one target, arm and number of shots and gives, per network, each seed's
accuracy and one calibration metric (default ECE; the choices are the registered metrics shown
in the explorer that the ledger holds, reprolib.scores.registry), their mean with its 95% t
interval (reprolib.study.stats.t_interval) and the reliability bins pooled over seeds;
`compare_summary` says it in one line and `compare_panel` draws it: accuracy and the metric
(seeds as points, mean and interval) beside the two reliability diagrams. The one-run panel
(prompt, label map) is `explorer_run.explorer_panel`.

Everything comes from the ledger, so a redraw costs only the drawing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reprolib.errors import ReprolibError, check_choice
from reprolib.scores.registry import get as get_metric
from reprolib.plots.calibration import ECE_NOTE, add_reliability_legend, draw_reliability
from reprolib.plots.common import shot_label, shown_metrics
from reprolib.plots.explorer_run import explorer_panel, select_run  # noqa: F401  (the explorer's one-run view)
from reprolib.study.stats import t_interval
from reprolib.transfer import registry as method_registry

DENSE = "imp:0"
# Display order of network kinds in the picker; a one-shot network is listed by its provenance.
KIND_ORDER = {"dense": 0, "imp": 1, "oneshot": 2, "magnitude": 3, "random": 4, "imported": 5}
COLORS = ("#4c72b0", "#dd8452")   # network A, network B


def network_key(kind: str, level: int, name: object = None) -> str:
    """'imp:4', 'magnitude:8', 'imported:<name>': one network of a study."""
    return f"imported:{name}" if kind == "imported" and isinstance(name, str) else f"{kind}:{int(level)}"


def network_keys(ledger: pd.DataFrame) -> pd.Series:
    names = ledger["ticket_name"] if "ticket_name" in ledger else pd.Series(None, index=ledger.index)
    return pd.Series([network_key(k, lv, n) for k, lv, n in zip(ledger["ticket_kind"], ledger["level"], names)],
                     index=ledger.index)


def _label(row: pd.Series) -> str:
    kind, level = str(row["ticket_kind"]), int(row["level"])
    density = f" ({100 * float(row['density']):.1f}% dense)" if pd.notna(row["density"]) else ""
    if kind == "imp" and level == 0:
        return "dense"
    if kind == "imported":
        return f"imported {str(row.get('ticket_name', '')).rstrip('/').split('/')[-1]}{density}"
    if row.get("provenance") == "oneshot":
        return f"one-shot {kind} level {level}{density}"
    prefix = "IMP" if kind == "imp" else f"{kind} baseline"
    return f"{prefix} level {level}{density}"


def _order(row: pd.Series) -> tuple:
    kind = str(row["ticket_kind"])
    group = "dense" if kind == "imp" and int(row["level"]) == 0 else \
        "oneshot" if row.get("provenance") == "oneshot" else kind
    return KIND_ORDER.get(group, 9), kind, int(row["level"]), str(row.get("ticket_name", ""))


def networks(ledger: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, key) of every network in the ledger, dense first, then IMP, one-shot, baselines, imported."""
    rows = ledger.assign(key=network_keys(ledger)).drop_duplicates("key")
    rows = sorted((r for _, r in rows.iterrows()), key=_order)
    return [(_label(r), r["key"]) for r in rows]


def _first_arm() -> str:
    """The arm the explorer opens on: the first arm of the claims' prompt method (VP-ILM)."""
    return method_registry.role_method("prompt").arms[0].name


def explorer_choices(ledger: pd.DataFrame) -> dict[str, list]:
    """The explorer's options: targets, arms (VP-ILM first), networks as (label, key), shots (full data last)."""
    if ledger.empty:
        raise ReprolibError("the ledger holds no finished run; run the sweep (notebook 02) or "
                            "`make figures PROFILE=<profile>` first")
    return {"target": sorted(ledger["target"].unique()),
            "arm": sorted(ledger["arm"].unique(), key=lambda a: (a != _first_arm(), a)),
            "network": networks(ledger),
            "n_shot": sorted((int(v) for v in ledger["n_shot"].unique()), key=lambda n: (n < 0, n))}


def metric_choices(ledger: pd.DataFrame) -> list[tuple[str, str]]:
    """(display name, name) of the metrics the explorer can show beside accuracy: the registered
    ones shown in the explorer that this ledger holds (ECE first)."""
    return [(get_metric(name).display, name) for name in shown_metrics(ledger, "explorer")]


def pooled_reliability(cells: list[str]) -> dict[str, list] | None:
    """Reliability bins pooled over runs (the ledger's JSON cells): counts summed, accuracy and
    confidence weighted by each bin's count."""
    bins = [json.loads(c) for c in cells if isinstance(c, str) and c]
    if not bins:
        return None
    counts = np.array([b["counts"] for b in bins], dtype=float)
    total = counts.sum(axis=0)
    weights = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    pooled = {"counts": total.tolist(), "edges": bins[0].get("edges")}
    for key in ("accuracy", "confidence"):
        pooled[key] = (weights * np.array([b[key] for b in bins], dtype=float)).sum(axis=0).tolist()
    return pooled


@dataclass(frozen=True)
class NetworkRuns:
    """One network's runs in a cell: label, seeds, per-seed accuracy and `metric` (its `values`),
    their intervals, pooled bins."""

    key: str
    label: str
    seeds: list[int]
    accuracy: list[float]
    values: list[float]
    reliability: dict[str, list] | None
    metric: str = "ece"

    @property
    def accuracy_interval(self):
        return t_interval(self.accuracy)

    @property
    def values_interval(self):
        return t_interval(self.values)


def comparison(ledger: pd.DataFrame, target: str, arm: str, n_shot: int, network_a: str = DENSE,
               network_b: str | None = None, metric: str = "ece") -> list[NetworkRuns]:
    """Both networks' runs on this target, arm and shots; a one-line error names what is missing.

    Many parameters because each explorer control selects one of them."""
    check_choice("explorer metric", metric, shown_metrics(ledger, "explorer"))
    labels = dict((key, label) for label, key in networks(ledger))
    network_b = network_b or list(labels)[-1]
    cell = ledger[(ledger["target"] == target) & (ledger["arm"] == arm) & (ledger["n_shot"] == n_shot)]
    keys = network_keys(cell)
    out = []
    for key in (network_a, network_b):
        if key not in labels:
            raise ReprolibError(f"no network {key!r} in this ledger; valid choices: {', '.join(labels)}")
        runs = cell[keys == key].sort_values("seed")
        if runs.empty:
            have = ", ".join(labels[k] for k in dict.fromkeys(keys)) or "none"
            raise ReprolibError(f"{labels[key]} has no run for {target} · {arm} · {shot_label(n_shot)}; "
                                f"networks with runs there: {have}")
        out.append(NetworkRuns(key, labels[key], [int(s) for s in runs["seed"]], runs["accuracy"].tolist(),
                               runs[metric].tolist(), pooled_reliability(runs["reliability"].tolist()), metric))
    return out


def _interval_text(interval, scale: float, digits: int, unit: str = "") -> str:
    mean = f"{scale * interval.mean:.{digits}f}{unit}"
    if interval.n < 2:
        return f"{mean} (one run)"
    return f"{mean} [95% CI {scale * interval.low:.{digits}f}, {scale * interval.high:.{digits}f}] (n={interval.n})"


def compare_summary(ledger: pd.DataFrame, target: str, arm: str, n_shot: int, network_a: str = DENSE,
                    network_b: str | None = None, metric: str = "ece") -> str:
    """'digits · vp/ilm · 5-shot | dense: accuracy 45.8% [95% CI ...] (n=3), ECE ... | <B>: ...'.

    Many parameters because each explorer control selects one of them."""
    runs = comparison(ledger, target, arm, n_shot, network_a, network_b, metric)
    display = get_metric(metric).display
    parts = [f"{r.label}: accuracy {_interval_text(r.accuracy_interval, 100, 1, '%')}, "
             f"{display} {_interval_text(r.values_interval, 1, 3)}" for r in runs]
    return " | ".join([f"{target} · {arm} · {shot_label(n_shot)}", *parts])


def _seed_strip(ax: Axes, runs: list[NetworkRuns], field: str, scale: float) -> None:
    """Each seed as a point, the mean as a bar across, the 95% t interval as an error bar;
    `field` is "accuracy" or "values" (the chosen metric)."""
    for x, (run, color) in enumerate(zip(runs, COLORS)):
        values = scale * np.asarray(getattr(run, field), dtype=float)
        offsets = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(x + offsets, values, color=color, s=22, alpha=0.75, zorder=3, label="a seed" if x == 0 else None)
        interval = getattr(run, f"{field}_interval")
        ax.hlines(scale * interval.mean, x - 0.28, x + 0.28, color="black", linewidth=2,
                  label="mean" if x == 0 else None)
        if interval.n >= 2:
            ax.errorbar(x, scale * interval.mean, yerr=[[scale * (interval.mean - interval.low)],
                                                       [scale * (interval.high - interval.mean)]],
                        color="black", capsize=6, linewidth=1.2, label="95% t interval" if x == 0 else None)
    ax.set_xticks([0, 1], [r.label.replace(" (", "\n(") for r in runs], fontsize=8)
    ax.set_xlim(-0.6, 1.6)
    chosen = get_metric(runs[0].metric)
    better = "lower = better calibrated" if chosen.direction == "lower" else f"{chosen.direction} = better"
    ax.set_title("accuracy (%)" if field == "accuracy" else f"{chosen.display} ({better})", fontsize=9)
    ax.grid(alpha=0.3, axis="y")


def compare_panel(ledger: pd.DataFrame, target: str, arm: str, n_shot: int, network_a: str = DENSE,
                  network_b: str | None = None, metric: str = "ece") -> Figure:
    """Accuracy and `metric` (default ECE; every seed, mean, 95% interval) beside both reliability
    diagrams (pooled over seeds).

    A fixed grid, not constrained layout: the explorer redraws this on every change and the
    layout solver was most of the time. Many parameters because each explorer control selects one."""
    runs = comparison(ledger, target, arm, n_shot, network_a, network_b, metric)
    fig = Figure(figsize=(14, 5.2))
    grid = fig.add_gridspec(2, 4, height_ratios=[3, 1], left=0.05, right=0.99, top=0.86, bottom=0.3,
                            wspace=0.3, hspace=0.08)
    for column, field, scale in ((0, "accuracy", 100.0), (1, "values", 1.0)):
        _seed_strip(fig.add_subplot(grid[:, column]), runs, field, scale)
    fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="lower left", bbox_to_anchor=(0.05, 0.02),
               ncols=3, fontsize=8)
    diagram = fig.add_subplot(grid[0, 2])
    counts = fig.add_subplot(grid[1, 2], sharex=diagram)
    pairs = [(diagram, counts), (fig.add_subplot(grid[0, 3], sharex=diagram, sharey=diagram),
                                 fig.add_subplot(grid[1, 3], sharex=diagram, sharey=counts))]
    for (ax, counts_ax), run in zip(pairs, runs):
        if run.reliability is None:
            ax.set_visible(False)
            counts_ax.set_visible(False)
            continue
        draw_reliability(ax, run.reliability, f"{run.label}\npooled over {len(run.seeds)} seed(s)", counts_ax)
        ax.title.set_fontsize(8)
    add_reliability_legend(fig)
    named = fig.legends.pop()   # the reliability legend's entries, set in two columns under the diagrams
    fig.legend(handles=named.legend_handles, labels=[t.get_text() for t in named.texts], ncols=2, fontsize=7,
               loc="lower center", bbox_to_anchor=(0.76, 0.0), title=ECE_NOTE, title_fontsize=7)
    fig.suptitle(f"{target} · {arm} · {shot_label(n_shot)}", fontsize=10)
    return fig
