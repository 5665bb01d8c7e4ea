"""Fill in registered metrics for finished runs from their saved scores, without training again.

`python -m reprolib ledger --recompute-metrics [--profile P | --artifacts DIR]` calls
`recompute_runs(runs_dir, records)` with every verified record of the folder, then rebuilds the
ledger. Per run with `<id>.scores.npz` (reprolib.scores.saved): every registered metric is
computed from the scores, the OOD stage's files the record names (reprolib.scores.ood_files) and
the record's config (reprolib.scores.registry.compute_metrics);
every value the record already holds must come back exactly (to the last bit, lists and the
`ood` groups included), otherwise the run is named in one loud line and its record left as it
is; when they all agree, the metrics the record lacks are added and the record is rewritten
atomically (`records.write_json_atomic`), its own digest renewed (`records.seal`). A run whose
metrics cannot be computed from what it saved (a cut or missing scores or OOD file, a formula
asking for something not saved) stops the command in one line naming the file and what to run,
before any record is rewritten. Metrics are not hashed into the run id, so the id stays.
Runs without saved scores (made before they were saved) are counted and named in one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprolib.errors import ReprolibError
from reprolib.scores.registry import compute_metrics, entries
from reprolib.records import DIGESTS, seal, write_json_atomic
from reprolib.scores.ood_files import saved_scores
from reprolib.scores.saved import scores_path

NAMED = 20   # runs named in a summary line; the rest are counted


@dataclass
class RecomputeReport:
    """What `recompute_runs` did: run ids per outcome and the metrics it added."""

    filled: list[str] = field(default_factory=list)        # records rewritten with new metrics
    unchanged: list[str] = field(default_factory=list)     # already held every registered metric
    differ: list[str] = field(default_factory=list)        # a held value did not come back: left as is
    no_scores: list[str] = field(default_factory=list)     # no <id>.scores.npz
    added: set[str] = field(default_factory=set)           # metric paths added anywhere
    missing_without_scores: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.differ

    def lines(self) -> list[str]:
        """The summary: one line of counts, and one naming the runs without saved scores."""
        checked = len(self.filled) + len(self.unchanged) + len(self.differ)
        out = [f"recompute-metrics: {checked} runs with saved scores: {len(self.filled)} filled in "
               f"({', '.join(sorted(self.added)) or 'nothing new'}), {len(self.unchanged)} already complete, "
               f"{len(self.differ)} differ (left unchanged)"]
        if self.no_scores:
            named = ", ".join(self.no_scores[:NAMED]) + (f" and {len(self.no_scores) - NAMED} more"
                                                         if len(self.no_scores) > NAMED else "")
            what = ", ".join(sorted(self.missing_without_scores)) or "metrics registered later"
            out.append(f"{len(self.no_scores)} runs have no saved scores: rerun them to fill in {what}: {named}")
        return out


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """{'ece': 0.1, 'ood.noise.msp_auroc': 0.9, 'reliability': {...}, ...}: a metrics dict's
    values by dotted path; dicts are walked except the reliability bins (compared whole)."""
    if not isinstance(value, dict) or prefix == "reliability":
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, sub in value.items():
        out.update(leaves(sub, f"{prefix}.{key}" if prefix else str(key)))
    return out


def same(a: Any, b: Any) -> bool:
    """Exactly equal: numbers to the bit (NaN equals NaN), lists and dicts element by element."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _merge_missing(held: dict[str, Any], fresh: dict[str, Any]) -> None:
    """Add to `held` what `fresh` has and `held` lacks, at any depth; nothing held is replaced."""
    for key, value in fresh.items():
        if key not in held:
            held[key] = value
        elif isinstance(held[key], dict) and isinstance(value, dict) and key != "reliability":
            _merge_missing(held[key], value)


def recompute_record(record: dict[str, Any], runs_dir: Path, report: RecomputeReport) -> dict[str, Any] | None:
    """Check one record (module docstring); its outcome goes into `report`. Returns the record with
    its new metrics filled in (to be written), or None. A metric that cannot be computed from what
    the run saved is a one-line ReprolibError naming the run's files and what to run."""
    run_id = record["id"]
    path = scores_path(runs_dir, run_id)
    held = leaves(record.get("metrics") or {})
    if not path.is_file():
        report.no_scores.append(run_id)
        report.missing_without_scores |= {e.name for e in entries() if e.kind != "ood" and e.name not in held}
        return
    try:
        computed = compute_metrics(saved_scores(runs_dir, record), record.get("config") or {})
    except (KeyError, TypeError, ValueError) as err:   # a formula asking for what was not saved
        raise ReprolibError(f"a registered metric cannot be computed for run {run_id} from {path} and its record "
                            f"({type(err).__name__}: {err}); rerun the run to save what it needs "
                            "(python -m reprolib sweep)") from None
    fresh = leaves(computed)
    wrong = [name for name, value in held.items() if name not in fresh or not same(value, fresh[name])]
    if wrong:
        shown = "; ".join(f"{n}: record {held[n]!r:.40} != recomputed {fresh.get(n, 'nothing')!r:.40}"
                          for n in wrong[:3])
        print(f"recompute-metrics: run {run_id} DIFFERS from its saved scores in {len(wrong)} metric(s) "
              f"({shown}); record left unchanged")
        report.differ.append(run_id)
        return
    new = [name for name in fresh if name not in held]
    if not new:
        report.unchanged.append(run_id)
        return None
    record["metrics"] = record.get("metrics") or {}
    _merge_missing(record["metrics"], computed)
    if DIGESTS in record:   # the record's own digest follows its new metrics; its files' stay
        seal(record, runs_dir)
    report.filled.append(run_id)
    report.added |= set(new)
    return record


def recompute_runs(runs_dir: str | Path, records: list[dict[str, Any]]) -> RecomputeReport:
    """Check every record of `records` (verified records of `runs_dir`), then write the filled ones:
    when one cannot be computed (a cut scores file, a metric asking for what was not saved) the
    one-line error is raised before any record is rewritten."""
    report = RecomputeReport()
    filled = [recompute_record(record, Path(runs_dir), report) for record in records]
    for record in filled:
        if record is not None:
            write_json_atomic(Path(runs_dir) / f"{record['id']}.json", record)
    return report
