"""The OOD stage: a run's logits on each of its OOD sets, keyed by (run id, set), beside the run.

A run's OOD sets (reprolib.transfer.ood_eval.ood_sets: each partner, then noise) are not part of
its id. Each (run, set) item is one file, `<id>.ood-<set>.npz` (reprolib.scores.ood_files), whose
stored digest is the set's description's hash. The stage runs

- right after training, in the same process, while the model is in memory
  (`score_sets` in reprolib.transfer.run.finish_run: the files are written before the record);
- later, for a finished run whose profile now assigns a set it has no current file for (a new
  target in a paper grid, a new partner, another `ood_per_set`): `complete` restores the model
  from the run's saved learned state (`<id>.npz`) and the network (reprolib.transfer.run.
  restore_method) and scores only the missing sets. Training is never repeated; a removed set's
  file is simply no longer read.

`complete` then brings the record's `metrics.ood` in line with the sets the profile assigns:
when its `ood_sets` (which files its OOD metrics came from) differ, every registered metric is
computed again from the saved test logits and the stage's files, the OOD groups are replaced
(the other metrics come back to the bit and stay as they are) and the record is rewritten
atomically (metrics are not hashed: the id stays). The sweep calls it for every finished run
(reprolib.transfer.run.run_transfer), so `python -m reprolib sweep` completes the stage.

Groups: `datasets` is the partner sets' logits concatenated in partner order and `noise` the
noise set's, so the record keeps the metric names and values it had when the partners were
scored as one pooled set (each image's logits depend on that image alone).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from reprolib.records import DIGESTS, file_sha256, seal, write_json_atomic
from reprolib.scores.ood_files import ood_path, ood_writer, saved_scores, set_digest, stored_digest, write_ood
from reprolib.scores.registry import compute_metrics
from reprolib.transfer.inputs import predict
from reprolib.transfer.method import TransferMethod
from reprolib.transfer.ood_eval import OodSet


def score_sets(method: TransferMethod, sets: Sequence[OodSet], batch_size: int) -> dict[str, Tensor]:
    """{set name: the method's float32 CPU logits on the set}, minibatch by minibatch."""
    return {s.name: predict(method.forward, method.inputs(s.images), batch_size) for s in sets}


def group_logits(sets: Sequence[OodSet], logits: dict[str, Tensor]) -> dict[str, Tensor]:
    """{metrics group: its sets' logits concatenated in set order} (module docstring)."""
    groups: dict[str, list[Tensor]] = {}
    for s in sets:
        groups.setdefault(s.group, []).append(logits[s.name])
    return {group: torch.cat(parts) for group, parts in groups.items()}


def record_field(sets: Sequence[OodSet]) -> dict[str, list[list[str]]]:
    """The record's `ood_sets`: {group: [[set name, digest], ...]} in pooling order."""
    out: dict[str, list[list[str]]] = {}
    for s in sets:
        out.setdefault(s.group, []).append([s.name, set_digest(s.description)])
    return out


def writers(runs_dir: str | Path, run_id: str, sets: Sequence[OodSet],
            logits: dict[str, Tensor]) -> tuple[tuple[Path, Callable[[Any], None]], ...]:
    """records.write_run_files companions: each set's file, written atomically before the record."""
    return tuple((ood_path(runs_dir, run_id, s.name), ood_writer(logits[s.name], s.description)) for s in sets)


def missing_sets(runs_dir: str | Path, run_id: str, sets: Sequence[OodSet]) -> list[OodSet]:
    """The sets with no current file for this run (none, or one written for another description)."""
    return [s for s in sets if stored_digest(ood_path(runs_dir, run_id, s.name)) != set_digest(s.description)]


def is_complete(runs_dir: str | Path, record: dict[str, Any], sets: Sequence[OodSet]) -> bool:
    """Every set has its current file and the record's OOD metrics were computed from them."""
    return not missing_sets(runs_dir, record["id"], sets) and record.get("ood_sets") == record_field(sets)


@dataclass
class StageItems:
    """What `complete` did for one finished run: the sets it scored, whether the record changed."""

    record: dict[str, Any]
    scored: list[str] = field(default_factory=list)
    rewritten: bool = False


def complete(record: dict[str, Any], runs_dir: str | Path, sets: Sequence[OodSet],
             restore: Callable[[], TransferMethod], batch_size: int) -> StageItems:
    """Score the sets this finished run lacks (restoring its model once, only when one is missing)
    and bring its record's OOD metrics in line with `sets` (module docstring)."""
    runs_dir, run_id = Path(runs_dir), record["id"]
    items = StageItems(record)
    missing = missing_sets(runs_dir, run_id, sets)
    if missing:
        logits = score_sets(restore(), missing, batch_size)
        for s in missing:
            write_ood(ood_path(runs_dir, run_id, s.name), logits[s.name], s.description)
        items.scored = [s.name for s in missing]
    wanted = record_field(sets)
    # the record's digests (records.seal) take in the files scored here; a file scored again to the
    # same bytes (a cut one) leaves them as they are
    held = dict((record.get(DIGESTS) or {}).get("files") or {})
    files = {**held, **{ood_path(runs_dir, run_id, s.name).name: file_sha256(ood_path(runs_dir, run_id, s.name))
                        for s in missing}} if DIGESTS in record else held
    if record.get("ood_sets") != wanted or files != held:
        updated = {**record, "ood_sets": wanted}
        scores = saved_scores(runs_dir, updated)
        metrics = compute_metrics(scores, record["config"])
        updated["metrics"] = {**record["metrics"], "ood": metrics["ood"]}
        if DIGESTS in record:
            seal(updated, runs_dir, sorted(files))
        write_json_atomic(runs_dir / f"{run_id}.json", updated)
        items.record, items.rewritten = updated, True
    return items

