"""The OOD stage's outputs: one run's logits on one OOD set, `<id>.ood-<set>.npz` beside its record.

A file is keyed by (run id, OOD set) and holds (numpy, compressed, read with allow_pickle=False):
- `logits` [M, K] float32: the run's model on the set's M images;
- `description`: the set's description as canonical JSON (which images, how many, at what size:
  reprolib.transfer.ood_eval), and `digest`, its hash (`set_digest`).
A file whose digest is not the one the profile's set has now is stale: the OOD stage scores the
set again (reprolib.transfer.ood_stage). Written atomically (records.atomic_write), like every
result file.

A record names the sets its `metrics.ood` groups were computed from in `ood_sets`
({group: [[set name, digest], ...]}, in pooling order); `ood_groups(runs_dir, record)` reads them
back and concatenates each group's logits, so the metric registry sees exactly the arrays the
record's OOD metrics came from (`saved_scores`, used by `ledger --recompute-metrics`).

Size: M x K x 4 bytes before compression: 300 x 10 = 12 kB per set for the embedded targets,
300 x 397 = 476 kB for SUN397 (see ARCHITECTURE.md for the paper grid's total).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from reprolib.errors import ReprolibError
from reprolib.records import atomic_write, canonical_json, config_hash

INFIX = ".ood-"
SUFFIX = ".npz"


def ood_path(runs_dir: str | Path, run_id: str, set_name: str) -> Path:
    """`<runs>/<id>.ood-<set>.npz`."""
    return Path(runs_dir) / f"{run_id}{INFIX}{set_name}{SUFFIX}"


def is_ood_file(path: str | Path) -> bool:
    name = Path(path).name
    return INFIX in name and name.endswith(SUFFIX)


def set_digest(description: dict[str, Any]) -> str:
    """The hash of an OOD set's description (records.config_hash: 16 hex digits)."""
    return config_hash(description)


def ood_writer(logits: Any, description: dict[str, Any]) -> Callable[[Any], None]:
    """`write(f)` that writes one (run, set) file to the open binary file `f` (records.atomic_write,
    or records.write_run_files' companions, make it atomic); `logits` a float tensor or array [M, K]."""
    array = np.ascontiguousarray(_numpy(logits), dtype=np.float32)
    if array.ndim != 2:
        raise ReprolibError(f"OOD logits must be [M, K], got shape {array.shape}")
    text, digest = np.array(canonical_json(description)), np.array(set_digest(description))
    return lambda f: np.savez_compressed(f, logits=array, description=text, digest=digest)


def write_ood(path: str | Path, logits: Any, description: dict[str, Any]) -> Path:
    """Write one (run, set) file atomically."""
    return atomic_write(path, ood_writer(logits, description))


def _numpy(logits: Any) -> np.ndarray:
    if hasattr(logits, "detach"):
        logits = logits.detach().cpu().float().numpy()
    return np.asarray(logits)


def stored_digest(path: str | Path) -> str | None:
    """The digest a (run, set) file was written for; None when there is no readable file."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return str(npz["digest"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None


def read_ood(path: str | Path, digest: str | None = None):
    """The logits (float32 torch tensor) of the (run, set) file at `path`. A missing, cut or
    malformed file, or one written for another description than `digest`, is a one-line error
    naming it and what to run."""
    import torch

    path = Path(path)
    fix = "run the sweep again to score it (python -m reprolib sweep --profile P)"
    if not path.is_file():
        raise ReprolibError(f"no OOD logits at {path}; {fix}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            logits, stored, description = npz["logits"], str(npz["digest"]), str(npz["description"])
        json.loads(description)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        raise ReprolibError(f"OOD logits {path} cannot be read ({type(err).__name__}: {err}); delete it and "
                            f"{fix}") from None
    if logits.ndim != 2 or stored != set_digest(json.loads(description)):
        raise ReprolibError(f"OOD logits {path} are malformed (shape {logits.shape}, digest {stored}); delete it "
                            f"and {fix}")
    if digest is not None and stored != digest:
        raise ReprolibError(f"OOD logits {path} were scored for another set (digest {stored}, the record says "
                            f"{digest}); {fix}")
    return torch.from_numpy(logits)


def ood_groups(runs_dir: str | Path, record: dict[str, Any]) -> dict[str, Any]:
    """{group: the logits of the group's sets concatenated in order} for the sets the record's
    `ood_sets` names (empty for a record without any)."""
    import torch

    out = {}
    for group, members in (record.get("ood_sets") or {}).items():
        parts = [read_ood(ood_path(runs_dir, record["id"], name), digest) for name, digest in members]
        if parts:
            out[group] = torch.cat(parts)
    return out


def saved_scores(runs_dir: str | Path, record: dict[str, Any]):
    """A finished run's SavedScores: its `<id>.scores.npz` (test logits, labels, and the OOD groups
    of runs that saved them there) with the OOD groups of its stage files on top."""
    from dataclasses import replace

    from reprolib.scores.saved import load_scores, scores_path

    scores = load_scores(scores_path(runs_dir, record["id"]))
    return replace(scores, ood_logits={**scores.ood_logits, **ood_groups(runs_dir, record)})
