"""Every metric a transfer run records, in one registry: how to compute it from the run's saved
scores, which way is better, how to show it, and where.

A `Metric` is computed from `reprolib.scores.saved.SavedScores` (test logits, test labels, OOD
logits per group) and the record's config (the legacy RLT value reads `legacy_ece_batch`).
`compute_metrics(scores, config)` gives a record's whole `metrics` dict: the scalars at the top
(`accuracy`, `ece`, ...), the reliability bins, and `ood.<group>.<name>` for every OOD group
the scores hold. Records, the ledger's metric columns, the calibration figure and tables, the
explorer's metric picker, tracking and `compare` read the registry here, so a new metric is one
`register` call (and one test): `python -m reprolib ledger --recompute-metrics` then fills it in
for every finished run that saved its scores (reprolib.scores.recompute).

Kinds: "scalar" (a number at metrics[name]), "bins" (a structure at metrics[name], not a score:
direction "none") and "ood" (a number per OOD group at metrics.ood[group][name]; its ledger
columns are ood_<group>_<name>). Softmax is taken once per run in float64, exactly as
`metrics.calibration_summary` does, so every value is the one that function gives, to the bit.
The registry itself is light (no torch until a metric is computed): the ledger, tables and
claims read its names without loading torch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reprolib.errors import ReprolibError, check_choice

if TYPE_CHECKING:
    import torch

    from reprolib.scores.saved import SavedScores

KINDS = ("scalar", "bins", "ood")
DIRECTIONS = ("lower", "higher", "none")
# Where a metric is shown: a ledger column, the calibration tables (notebook 05), the calibration
# figure (calibration_vs_sparsity), the explorer's metric picker (beside accuracy, always shown),
# the trackers' final values, `compare`'s columns.
PLACES = ("ledger", "calibration_table", "calibration_figure", "explorer", "tracking", "compare")
UNITS = ("%", "")


class MetricInputs:
    """One run's scores as the metrics read them: checked float64 logits and labels, their
    log-softmax and softmax (computed once), and each OOD group's detection metrics."""

    def __init__(self, scores: SavedScores, config: dict[str, Any]):
        self.scores, self.config = scores, config
        self._detection: dict[str, dict[str, float]] = {}

    @functools.cached_property
    def checked(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(float64 logits, labels, log-softmax): calibration_summary's own first steps."""
        import torch

        z, y = _m().checked_logits(self.scores.test_logits, self.scores.test_labels, "compute_metrics")
        return z, y, torch.log_softmax(z, dim=1)

    @functools.cached_property
    def probs(self) -> torch.Tensor:
        return self.checked[2].exp()

    @property
    def labels(self) -> torch.Tensor:
        return self.checked[1]

    def detection(self, group: str) -> dict[str, float]:
        """msp / energy AUROC and FPR95 of one OOD group (reprolib.scores.ood.detection, as the run scored it)."""
        from reprolib.scores.ood import detection

        if group not in self._detection:
            self._detection[group] = detection(self.scores.test_logits, self.scores.ood_logits[group])
        return self._detection[group]


@dataclass(frozen=True)
class Metric:
    """One registered metric. `compute(inputs)` returns its value (for kind "ood":
    `compute(inputs, group)`), or None when the record's config cannot give it (e.g. no
    `legacy_ece_batch`); `bounds` is the range every value lies in (tests check it); `shown_in`
    lists the PLACES that show it."""

    name: str
    compute: Callable[..., Any]
    direction: str
    display: str
    unit: str = ""
    shown_in: tuple[str, ...] = ("ledger", "compare")
    kind: str = "scalar"
    bounds: tuple[float, float] = (0.0, 1.0)

    def label(self) -> str:
        """'ECE (lower is better)', 'accuracy (%, higher is better)': an axis or column title."""
        parts = [p for p in (self.unit, "" if self.direction == "none" else f"{self.direction} is better") if p]
        return f"{self.display} ({', '.join(parts)})" if parts else self.display


_REGISTRY: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add one metric; its kind, direction, unit and places are checked, its name must be new."""
    check_choice("metric kind", metric.kind, KINDS)
    check_choice("metric direction", metric.direction, DIRECTIONS)
    check_choice("metric unit", metric.unit, UNITS)
    for place in metric.shown_in:
        check_choice("metric place", place, PLACES)
    if metric.name in _REGISTRY:
        raise ReprolibError(f"metric {metric.name!r} is registered twice; choose a new name, not one of "
                            f"{', '.join(_REGISTRY)}")
    _REGISTRY[metric.name] = metric
    return metric


def get(name: str) -> Metric:
    return _REGISTRY[check_choice("metric", name, list(_REGISTRY))]


def entries(kind: str | None = None, place: str | None = None) -> list[Metric]:
    """The registered metrics in registration order, optionally of one kind and shown in one place."""
    return [e for e in _REGISTRY.values()
            if (kind is None or e.kind == kind) and (place is None or place in e.shown_in)]


def names(kind: str | None = "scalar", place: str | None = None) -> list[str]:
    """Names of the registered metrics (default: the scalars, i.e. the ledger's metric columns)."""
    return [e.name for e in entries(kind, place)]


def compute_metrics(scores: SavedScores, config: dict[str, Any]) -> dict[str, Any]:
    """A record's `metrics` dict: every registered metric computed from the saved scores and the
    record's config (a metric the config cannot give is left out). `ood` holds one dict per
    OOD group of the scores (empty when there is none)."""
    inputs = MetricInputs(scores, config)
    out: dict[str, Any] = {}
    for metric in entries():
        if metric.kind == "ood":
            ood = out.setdefault("ood", {group: {} for group in scores.ood_logits})
            for group in scores.ood_logits:
                ood[group][metric.name] = metric.compute(inputs, group)
            continue
        value = metric.compute(inputs)
        if value is not None:
            out[metric.name] = value
    out.setdefault("ood", {})
    return out


# ----------------------------------------------------------------------------- the entries

def _m():
    """reprolib.scores.metrics (the formulas), imported when a metric is first computed."""
    from reprolib.scores import metrics
    return metrics


def _legacy(inputs: MetricInputs) -> float | None:
    """RLT's logged value at the batch RLT logged with (the record's `legacy_ece_batch`; None without it)."""
    batch = inputs.config.get("legacy_ece_batch")
    if batch is None:
        return None
    z, y, _ = inputs.checked
    return _m().legacy_rlt_ece(z, y, batch)


def _ood(name: str) -> Callable[[MetricInputs, str], float]:
    return lambda inputs, group: inputs.detection(group)[name]


EVERYWHERE = PLACES   # the calibration metrics: in every place
register(Metric("accuracy", lambda i: float((i.probs.argmax(dim=1) == i.labels).double().mean()), "higher",
                "accuracy", unit="%", shown_in=("ledger", "calibration_table", "tracking", "compare")))
register(Metric("ece", lambda i: _m().ece(i.probs, i.labels), "lower", "ECE", shown_in=EVERYWHERE))
register(Metric("mce", lambda i: _m().mce(i.probs, i.labels), "lower", "MCE", shown_in=EVERYWHERE))
register(Metric("nll", lambda i: float(-i.checked[2].gather(1, i.labels[:, None]).mean()), "lower", "NLL",
                shown_in=EVERYWHERE, bounds=(0.0, float("inf"))))
register(Metric("brier", lambda i: _m().brier(i.probs, i.labels), "lower", "Brier score", shown_in=EVERYWHERE,
                bounds=(0.0, 2.0)))
register(Metric("reliability", lambda i: _m().reliability_bins(i.probs, i.labels), "none", "reliability bins",
                shown_in=(), kind="bins"))
register(Metric("legacy_rlt_ece", _legacy, "none", "legacy RLT \"ECE\"",   # not a calibration measure
                shown_in=("ledger", "calibration_table", "compare"), bounds=(0.0, float("inf"))))
for _score, _display in (("msp", "MSP"), ("energy", "energy")):
    register(Metric(f"{_score}_auroc", _ood(f"{_score}_auroc"), "higher", f"OOD AUROC ({_display})",
                    shown_in=("ledger", "compare"), kind="ood"))
    register(Metric(f"{_score}_fpr95", _ood(f"{_score}_fpr95"), "lower", f"OOD FPR at 95% TPR ({_display})",
                    shown_in=("ledger", "compare"), kind="ood"))
register(Metric("adaptive_ece", lambda i: _m().adaptive_ece(i.probs, i.labels), "lower", "adaptive ECE",
                shown_in=EVERYWHERE))
register(Metric("classwise_ece", lambda i: _m().classwise_ece(i.probs, i.labels), "lower", "classwise ECE",
                shown_in=EVERYWHERE))
