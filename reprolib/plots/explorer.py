"""The sparsity explorer: any two networks of a study, side by side, over every seed.

A network is one (ticket kind, level, imported name) of the ledger: the dense model (IMP level
0), IMP tickets, magnitude and random baselines, one-shot pruned networks of a pretrained
backbone, imported tickets. `explorer_choices` lists what a ledger holds; `comparison` takes
two networks on one target, arm and number of shots and gives, per network, each seed's
accuracy and one calibration metric (default ECE; the choices are the registered metrics shown
in the explorer that the ledger holds, reprolib.scores.registry), their mean with its 95% t
interval (reprolib.study.stats.t_interval) and the reliability bins pooled over seeds;
`compare_summary` says it in one line; `explorer_figure.compare_panel` draws it: accuracy and
the metric (seeds as points, mean and interval) beside the two reliability diagrams. The one-run
panel (prompt, label map) is `explorer_run.explorer_panel`.

Everything comes from the ledger, grouped once per study (`StudyIndex`), so a redraw costs a
lookup and the drawing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reprolib.errors import ReprolibError, check_choice
from reprolib.scores.registry import get as get_metric
from reprolib.plots.common import full_data_last, shot_label, shown_metrics
from reprolib.study.stats import t_interval
from reprolib.transfer import registry as method_registry

DENSE = "imp:0"
# Display order of network kinds in the picker; a one-shot network is listed by its provenance.
KIND_ORDER = {"dense": 0, "imp": 1, "oneshot": 2, "magnitude": 3, "random": 4, "imported": 5}


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
            "n_shot": full_data_last(int(v) for v in ledger["n_shot"].unique())}


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
    """One network's runs in a cell: label, seeds and their run ids, per-seed accuracy and `metric`
    (its `values`), their intervals, pooled bins."""

    key: str
    label: str
    seeds: list[int]
    accuracy: list[float]
    values: list[float]
    reliability: dict[str, list] | None
    metric: str = "ece"
    ids: tuple[str, ...] = ()

    @property
    def accuracy_interval(self):
        return t_interval(self.accuracy)

    @property
    def values_interval(self):
        return t_interval(self.values)


class StudyIndex:
    """A ledger grouped once by cell (target, arm, shots) and network: what every redraw of the
    explorer looks up, so a change of a control costs a dictionary lookup, not a pass over the ledger.
    Pooled reliability bins are computed the first time a network's runs in a cell are asked for,
    or all at once by `pool_all` (the explorer does it in the background when a study opens)."""

    def __init__(self, ledger: pd.DataFrame):
        self.ledger = ledger
        self.labels = {key: label for label, key in networks(ledger)}
        self.metrics = shown_metrics(ledger, "explorer")
        columns = ["target", "arm", "n_shot", "id", "seed", "accuracy", "reliability"]
        columns += [m for m in self.metrics if m not in columns]
        keyed = ledger[columns].assign(network=network_keys(ledger)).sort_values("seed", kind="stable")
        self.cells = {(target, arm, int(n_shot)): dict(tuple(frame.groupby("network", sort=False)))
                      for (target, arm, n_shot), frame in keyed.groupby(["target", "arm", "n_shot"], sort=False)}
        self._pooled: dict[tuple, dict | None] = {}   # (cell, network) -> bins

    def shots(self, target: str, arm: str) -> list[int]:
        """The shots with runs for this target and arm (full data last): a study may run full data
        on some targets only (imagenet-lite: digits)."""
        return full_data_last(n for t, a, n in self.cells if (t, a) == (target, arm))

    def runs(self, target: str, arm: str, n_shot: int, key: str, metric: str = "ece") -> NetworkRuns:
        """A network's runs in a cell; a one-line error names the networks that have runs there."""
        if key not in self.labels:
            raise ReprolibError(f"no network {key!r} in this ledger; valid choices: {', '.join(self.labels)}")
        cell = self.cells.get((target, arm, int(n_shot)), {})
        if key not in cell:
            have = ", ".join(label for k, label in self.labels.items() if k in cell) or "none"
            raise ReprolibError(f"{self.labels[key]} has no run for {target} · {arm} · {shot_label(n_shot)}; "
                                f"networks with runs there: {have}")
        rows = cell[key]
        return NetworkRuns(key, self.labels[key], [int(s) for s in rows["seed"]], rows["accuracy"].tolist(),
                           rows[metric].tolist(), self._pooled_bins((target, arm, int(n_shot)), key), metric,
                           tuple(rows["id"]))

    def _pooled_bins(self, cell: tuple[str, str, int], key: str) -> dict[str, list] | None:
        if (cell, key) not in self._pooled:
            self._pooled[cell, key] = pooled_reliability(self.cells[cell][key]["reliability"].tolist())
        return self._pooled[cell, key]

    def pool_all(self) -> None:
        """Pool every cell's bins now (about 0.1 s of CPU for 2,000 runs), so that no redraw pays for it."""
        for cell, by_network in self.cells.items():
            for key in by_network:
                self._pooled_bins(cell, key)


def comparison(ledger: pd.DataFrame | StudyIndex, target: str, arm: str, n_shot: int, network_a: str = DENSE,
               network_b: str | None = None, metric: str = "ece") -> list[NetworkRuns]:
    """Both networks' runs on this target, arm and shots; a one-line error names what is missing.
    `ledger` may be a StudyIndex already built from it (the explorer keeps one per study).

    Many parameters because each explorer control selects one of them."""
    index = ledger if isinstance(ledger, StudyIndex) else StudyIndex(ledger)
    check_choice("explorer metric", metric, index.metrics)
    network_b = network_b or list(index.labels)[-1]
    return [index.runs(target, arm, n_shot, key, metric) for key in (network_a, network_b)]


def _interval_text(interval, scale: float, digits: int, unit: str = "") -> str:
    mean = f"{scale * interval.mean:.{digits}f}{unit}"
    if interval.n < 2:
        return f"{mean} (one run)"
    return f"{mean} [95% CI {scale * interval.low:.{digits}f}, {scale * interval.high:.{digits}f}] (n={interval.n})"


def compare_summary(ledger: pd.DataFrame | StudyIndex, target: str, arm: str, n_shot: int, network_a: str = DENSE,
                    network_b: str | None = None, metric: str = "ece") -> str:
    """'digits · vp/ilm · 5-shot | dense: accuracy 45.8% [95% CI ...] (n=3), ECE ... | <B>: ...'.

    Many parameters because each explorer control selects one of them."""
    runs = comparison(ledger, target, arm, n_shot, network_a, network_b, metric)
    display = get_metric(metric).display
    parts = [f"{r.label}: accuracy {_interval_text(r.accuracy_interval, 100, 1, '%')}, "
             f"{display} {_interval_text(r.values_interval, 1, 3)}" for r in runs]
    return " | ".join([f"{target} · {arm} · {shot_label(n_shot)}", *parts])
