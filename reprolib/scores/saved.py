"""A run's saved scores: its reported test logits, test labels and OOD logits, `<id>.scores.npz`.

Every transfer run writes them beside its record (before the JSON, the commit marker), so that a
metric registered after the run (`reprolib.scores.registry`) can be filled in for every finished
run without training again (`python -m reprolib ledger --recompute-metrics`). The logits are the
ones the record's metrics were computed from (the reported epoch's, on the full test set), kept in
the dtype the model produced (float32 here), so recomputing a metric gives the stored value to
the last bit.

Arrays (numpy, compressed, read with allow_pickle=False):
- `test_logits` [N, K] float: the reported test logits; `test_labels` [N] int64.
- `ood_<group>` [M, K] float: only in runs made before the OOD stage, the logits of each OOD
  group their `metrics.ood` scores. A run now keeps its OOD logits per set in the stage's own
  files (`<id>.ood-<set>.npz`, reprolib.scores.ood_files: `saved_scores` joins the two).

Size (why compressed float32 and nothing more): N * K * 4 bytes before compression, so 10,000 x 10
(CIFAR-10) is 0.4 MB and SUN397's 19,850 x 397 is 31.5 MB; the paper grid's 5,040 runs hold about
25 GB in all, a small fraction of the image caches they read. Learned state stays in `<id>.npz`.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reprolib.errors import ReprolibError

SUFFIX = ".scores.npz"
OOD_PREFIX = "ood_"


@dataclass(frozen=True)
class SavedScores:
    """What a run's metrics are computed from (CPU tensors)."""

    test_logits: torch.Tensor
    test_labels: torch.Tensor
    ood_logits: dict[str, torch.Tensor] = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays of `<id>.scores.npz` (see the module docstring)."""
        out = {"test_logits": _numpy(self.test_logits), "test_labels": _numpy(self.test_labels).astype(np.int64)}
        out.update({OOD_PREFIX + group: _numpy(logits) for group, logits in self.ood_logits.items()})
        return out


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach().cpu()
    if tensor.dtype in (torch.bfloat16, torch.float16):   # numpy has no bf16; widening is exact
        tensor = tensor.float()
    return tensor.numpy()


def scores_path(runs_dir: str | Path, run_id: str) -> Path:
    """`<runs>/<id>.scores.npz`."""
    return Path(runs_dir) / f"{run_id}{SUFFIX}"


def is_scores_file(path: str | Path) -> bool:
    return Path(path).name.endswith(SUFFIX)


def write_scores(f: Any, scores: SavedScores) -> None:
    """Write `scores` to the open binary file `f` (records.write_run_files makes it atomic)."""
    np.savez_compressed(f, **scores.arrays())


def load_scores(path: str | Path) -> SavedScores:
    """The scores saved at `path`; a missing, truncated or malformed file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise ReprolibError(f"no saved scores at {path}; the run predates saved scores: rerun it to save them")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ReprolibError(f"saved scores {path} cannot be read ({type(err).__name__}: {err}); delete the run's "
                            f"record {path.name.removesuffix(SUFFIX)}.json too, and the next sweep reruns it") from None
    missing = {"test_logits", "test_labels"} - set(arrays)
    logits, labels = arrays.get("test_logits"), arrays.get("test_labels")
    if missing or logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ReprolibError(f"saved scores {path} are malformed (missing {sorted(missing)} or shapes "
                            f"{getattr(logits, 'shape', None)} / {getattr(labels, 'shape', None)}); valid: "
                            "test_logits [N, K] and test_labels [N]")
    ood = {name.removeprefix(OOD_PREFIX): torch.from_numpy(a) for name, a in arrays.items()
           if name.startswith(OOD_PREFIX)}
    return SavedScores(torch.from_numpy(logits), torch.from_numpy(labels), ood)
