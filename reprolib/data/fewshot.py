"""Few-shot sampling (docs/methods.md s.8): n training images per class, seeded.

For each class in sorted label order, that class's indices (ascending) are shuffled with
one torch.Generator seeded with `seed` (classes drawn in turn from the same generator)
and the first n are kept; a class with fewer than n images keeps all of them (RLT's
behaviour; `effective_shots` records which classes were capped). The result is returned sorted ascending, so a subset keeps the
dataset's original order. n_shot = -1 means the full set (arange). Labels may be any
tensor, list or ndarray of ints: we never need a dataset's `.targets` attribute.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from reprolib.errors import ReprolibError, check_type


def as_label_tensor(labels: Any) -> torch.Tensor:
    """Labels (tensor, list, tuple, ndarray) as a 1-D int64 tensor."""
    if isinstance(labels, torch.Tensor):
        tensor = labels.detach().cpu()
    else:
        tensor = torch.from_numpy(np.asarray(labels))
    if tensor.numel() == 0:
        raise ReprolibError("labels are empty; few-shot sampling needs at least one image per class")
    if tensor.dtype.is_floating_point or tensor.dtype == torch.bool or tensor.dtype.is_complex:
        raise ReprolibError(f"labels must be integers, got dtype {tensor.dtype}")
    if tensor.dim() != 1:
        raise ReprolibError(f"labels must be 1-D, got shape {tuple(tensor.shape)}")
    return tensor.to(torch.long)


def few_shot_indices(
    labels: Any, n_shot: int, seed: int, class_names: Sequence[str] | None = None
) -> torch.Tensor:
    """Indices (sorted ascending, int64) of `n_shot` seeded images per class; -1 = all.

    A class with fewer than `n_shot` images keeps all of them, as RLT's sampler does
    (docs/methods.md s.8); `effective_shots` says which classes were capped. class_names
    (optional) only makes the error message readable.
    """
    check_type("n_shot", n_shot, int)
    check_type("seed", seed, int)
    y = as_label_tensor(labels)
    classes = torch.unique(y, sorted=True)
    if n_shot == -1:
        return torch.arange(len(y))
    if n_shot < 1:
        raise ReprolibError(f"n_shot={n_shot} is not a valid shot count; valid: -1 (all) or an int >= 1")
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for cls in classes.tolist():
        members = torch.nonzero(y == cls).flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:n_shot]])
    return torch.sort(torch.cat(chosen)).values


def effective_shots(labels: Any, n_shot: int, class_names: Sequence[str] | None = None) -> dict[str, Any] | None:
    """{"min", "max", "capped": [classes with fewer than n_shot images]} of a few-shot draw.

    None for n_shot = -1 (the full set). Classes are named by `class_names` when given,
    else by their label. This is what the record and the ledger store (docs/methods.md s.8).
    """
    if n_shot == -1:
        return None
    y = as_label_tensor(labels)
    classes, counts = torch.unique(y, sorted=True, return_counts=True)
    kept = torch.clamp(counts, max=n_shot)
    capped = [int(c) for c, k in zip(classes.tolist(), kept.tolist()) if k < n_shot]
    if class_names is not None:
        capped = [class_names[c] if 0 <= c < len(class_names) else c for c in capped]
    return {"n_shot": n_shot, "min": int(kept.min()), "max": int(kept.max()), "capped": capped}


def capped_warning(summary: dict[str, Any] | None, dataset: str) -> str | None:
    """One warning line when some classes had fewer than n_shot images, else None."""
    if not summary or not summary["capped"]:
        return None
    shown = ", ".join(str(c) for c in summary["capped"][:5])
    more = f" and {len(summary['capped']) - 5} more" if len(summary["capped"]) > 5 else ""
    return (f"warning: {dataset} n_shot={summary['n_shot']}: {len(summary['capped'])} classes have fewer images "
            f"and keep all of them ({shown}{more}); effective shots {summary['min']}..{summary['max']}")
