"""Datasets for reprolib: one API over offline embedded sets and torchvision paper sets.

    from reprolib.data import get_dataset, names, info, few_shot_indices
    train = get_dataset("digits", "train")          # ImageSplit
    x, y = train.tensors()                            # float32 (N, C, H, W) in [0, 1], int64
    few = train.subset(few_shot_indices(train.labels, n_shot=10, seed=1))

Importing this package is cheap: the names below load their module (and torch) on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "get_dataset": "reprolib.data.registry",
    "names": "reprolib.data.catalog",
    "info": "reprolib.data.catalog",
    "DatasetInfo": "reprolib.data.catalog",
    "ImageSplit": "reprolib.data.split",
    "few_shot_indices": "reprolib.data.fewshot",
    "effective_shots": "reprolib.data.fewshot",
    "capped_warning": "reprolib.data.fewshot",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'reprolib.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
