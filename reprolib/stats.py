"""Intervals over seeds: `t_interval(values)` -> the mean and its 95% Student-t interval.

One value gives the mean with NaN bounds (one run: no interval); no value gives NaN throughout.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval over `n` independent runs (seeds)."""

    mean: float
    low: float
    high: float
    n: int


def t_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> Interval:
    """The mean of `values` (NaN dropped) and its Student-t confidence interval."""
    array = np.asarray([float(v) for v in values], dtype=float)
    array = array[np.isfinite(array)]
    n = int(array.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(array.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1) * array.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n)
