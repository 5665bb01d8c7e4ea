"""Few-shot sampling (docs/methods.md s.8): n training images per class, seeded.

For each class in sorted label order, that class's indices (ascending) are shuffled with
one torch.Generator seeded with `seed` (classes drawn in turn from the same generator)
and the first n are kept. The result is returned sorted ascending, so a subset keeps the
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

    class_names (optional) only makes the error message readable.
    """
    check_type("n_shot", n_shot, int)
    check_type("seed", seed, int)
    y = as_label_tensor(labels)
    classes, counts = torch.unique(y, sorted=True, return_counts=True)
    smallest = int(counts.argmin())
    min_count, min_class = int(counts[smallest]), int(classes[smallest])
    if n_shot == -1:
        return torch.arange(len(y))
    if n_shot < 1 or n_shot > min_count:
        name = f" ({class_names[min_class]!r})" if class_names is not None and 0 <= min_class < len(class_names) else ""
        reason = (f"exceeds the {min_count} training images of class {min_class}{name}" if n_shot > min_count
                  else "is not a valid shot count")
        raise ReprolibError(f"n_shot={n_shot} {reason}; valid: -1 (all) or 1..{min_count}")
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for cls in classes.tolist():
        members = torch.nonzero(y == cls).flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:n_shot]])
    return torch.sort(torch.cat(chosen)).values
