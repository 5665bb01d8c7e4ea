"""Every number with its uncertainty: t intervals over seeds, paired effects, and a seeded
bootstrap over test images for cells run with one seed (docs/methods.md s.12).

- `t_interval(values)`: the mean and its 95% Student-t confidence interval over independent
  runs (seeds); one value gives the mean with NaN bounds and the word "one run".
- `paired_effect(a_by_seed, b_by_seed)`: the interval of the per-seed differences a - b, the
  pairs matched by seed. Runs of one cell that share a seed share their few-shot draw and their
  initialisation, so pairing removes that shared noise from the comparison.
- `image_replicates(bins, metric)`: bootstrap replicates of one run's accuracy or ECE,
  resampling its test images with replacement (seeded); `bootstrap_interval` turns replicates
  into a percentile interval named "image bootstrap, one seed". It measures test-set
  noise only, not the seed-to-seed noise of training: read it as a lower bound on the noise.
- `holm(pvalues)`: Holm's step-down over a family of one-sided tests; `p_above` gives a
  one-sided p-value that a mean exceeds a margin (t over seeds, or the bootstrap's share).

Quantiles come from scipy.stats.t and numpy's seeded generators; nothing here hand-writes a
distribution.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from reprolib.errors import ReprolibError, check_choice

CONFIDENCE = 0.95
N_BOOT = 2000              # replicates of the image bootstrap for a 95% interval (n_boot_for: more for rarer tails)
TAIL_REPLICATES = 50       # replicates beyond each end of a bootstrap interval (n_boot_for)
BOOTSTRAP_SEED = 0         # with each run's id, the seed of its replicates: same ledger, same interval
T_OVER_SEEDS = "t over seeds"
IMAGE_BOOTSTRAP = "image bootstrap, one seed"
SEEDS_AGREE = "image bootstrap, seeds agree exactly"
SEEDS_NOT_SHARED = "image bootstrap, no 2 seeds shared by every cell"
ONE_RUN = "one run"
NO_RUNS = "no runs"
BOOTSTRAP_METRICS = ("accuracy", "ece")


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval over `n` runs; `method` says how it was made
    (t over seeds, image bootstrap, one run: bounds NaN, or no runs: everything NaN)."""

    mean: float
    low: float
    high: float
    n: int
    method: str = T_OVER_SEEDS
    confidence: float = CONFIDENCE

    @property
    def one_run(self) -> bool:
        """True when there is a single run and so no interval (the word "one run")."""
        return self.method == ONE_RUN

    def clears(self, margin: float) -> bool:
        """The whole interval lies above `margin` (False without an interval)."""
        return bool(not math.isnan(self.low) and self.low > margin)

    def below(self, margin: float) -> bool:
        """The whole interval lies below `margin` (False without an interval)."""
        return bool(not math.isnan(self.high) and self.high < margin)

    def scaled(self, factor: float) -> Interval:
        """The same interval with every number multiplied by `factor` (> 0; e.g. 100 for percent)."""
        return Interval(self.mean * factor, self.low * factor, self.high * factor, self.n, self.method,
                        self.confidence)

    def text(self, digits: int = 1, signed: bool = False) -> str:
        """'12.3 [10.1, 14.5] (n=3, t over seeds)'; one run: '12.3 (one run)'; no runs: 'no runs'."""
        if self.method == NO_RUNS or math.isnan(self.mean):
            return NO_RUNS
        sign = "+" if signed else ""
        mean = f"{self.mean:{sign}.{digits}f}"
        if self.one_run:
            return f"{mean} ({ONE_RUN})"
        level = "" if self.confidence == CONFIDENCE else f"{100 * self.confidence:.4g}% "
        return f"{mean} [{level}{self.low:{sign}.{digits}f}, {self.high:{sign}.{digits}f}] (n={self.n}, {self.method})"

    def cell(self, digits: int = 1) -> str:
        """The compact form for table cells: '12.3 [10.1, 14.5] n=3', or '12.3 (one run)'."""
        if self.method == NO_RUNS or math.isnan(self.mean):
            return ""
        if self.one_run:
            return f"{self.mean:.{digits}f} ({ONE_RUN})"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}] n={self.n}"


def _check_confidence(confidence: float) -> float:
    if not isinstance(confidence, (int, float)) or isinstance(confidence, bool) or not 0 < confidence < 1:
        raise ReprolibError(f"confidence {confidence!r} must be a number strictly between 0 and 1, e.g. 0.95")
    return float(confidence)


def _finite(values: Iterable[float]) -> np.ndarray:
    array = np.asarray(list(values) if not isinstance(values, (np.ndarray, pd.Series)) else values, dtype=float)
    return array[~np.isnan(array)]


def t_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> Interval:
    """The mean of `values` (NaNs dropped) and its Student-t interval, n - 1 degrees of freedom.

    One value: the mean with NaN bounds and method "one run"; none: all NaN, "no runs"."""
    confidence = _check_confidence(confidence)
    x = _finite(values)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, NO_RUNS, confidence)
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1, ONE_RUN, confidence)
    half = float(scipy_stats.t.ppf((1 + confidence) / 2, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, T_OVER_SEEDS, confidence)


def _by_seed(values: Mapping | pd.Series, name: str) -> pd.Series:
    if isinstance(values, pd.Series):
        return values.astype(float)
    if isinstance(values, Mapping):
        return pd.Series(values, dtype=float)
    raise ReprolibError(f"{name} must map seed -> value (a dict or a pandas Series), got {type(values).__name__}")


def paired_effect(a_by_seed: Mapping | pd.Series, b_by_seed: Mapping | pd.Series,
                  confidence: float = CONFIDENCE) -> Interval:
    """The interval of a - b over the seeds both have (each seed one pair: same seed, same
    few-shot draw); seeds only one side has are left out. n = the number of pairs."""
    a, b = _by_seed(a_by_seed, "a_by_seed"), _by_seed(b_by_seed, "b_by_seed")
    if a.index.has_duplicates or b.index.has_duplicates:
        raise ReprolibError("paired_effect needs one value per seed on each side; average repeated runs first")
    common = a.index.intersection(b.index)
    return t_interval((a[common] - b[common]).to_numpy(), confidence)


def all_equal(values: Iterable[float]) -> bool:
    """True when the values agree up to rounding (seeds that show no noise at all)."""
    x = _finite(values)
    return len(x) > 0 and float(np.ptp(x)) <= 1e-9 * max(1.0, float(np.abs(x).max()))


def run_rng(run_id: str, seed: int = BOOTSTRAP_SEED) -> np.random.Generator:
    """The generator of one run's bootstrap replicates: fixed by the run's id and `seed`."""
    return np.random.default_rng([seed, zlib.crc32(str(run_id).encode())])


def image_replicates(bins: Mapping, metric: str = "accuracy", n_boot: int = N_BOOT,
                     rng: np.random.Generator | None = None) -> np.ndarray:
    """`n_boot` bootstrap replicates of one run's `metric`, its test images resampled with
    replacement, read from the run's reliability bins (counts, accuracy per bin, mean
    confidence per bin; metrics.reliability_bins).

    Accuracy is exact: the bins give each image's correctness. ECE is recomputed from the
    resampled bins with each bin's stored mean confidence (the confidence of single images is
    not stored), so it misses the small spread of confidence within a bin."""
    check_choice("bootstrap metric", metric, BOOTSTRAP_METRICS)
    rng = rng if rng is not None else np.random.default_rng(BOOTSTRAP_SEED)
    counts = np.rint(np.asarray(bins["counts"], dtype=float)).astype(int)
    n = int(counts.sum())
    if n == 0:
        raise ReprolibError("reliability bins hold no test images; the run's record has no reliability counts")
    correct = np.rint(counts * np.asarray(bins["accuracy"], dtype=float)).astype(int)
    if metric == "accuracy":
        return rng.binomial(n, correct.sum() / n, size=n_boot) / n
    return _ece_replicates(counts, correct, np.asarray(bins["confidence"], dtype=float), n_boot, rng)


def bins_metric(bins: Mapping, metric: str = "accuracy") -> float:
    """`metric` of the test images as the bins hold them (the centre of image_replicates)."""
    check_choice("bootstrap metric", metric, BOOTSTRAP_METRICS)
    counts = np.asarray(bins["counts"], dtype=float)
    accuracy, confidence = np.asarray(bins["accuracy"], dtype=float), np.asarray(bins["confidence"], dtype=float)
    if metric == "accuracy":
        return float((np.rint(counts * accuracy)).sum() / counts.sum())
    return float((np.abs(accuracy - confidence) * counts).sum() / counts.sum())


def _ece_replicates(counts: np.ndarray, correct: np.ndarray, confidence: np.ndarray, n_boot: int,
                    rng: np.random.Generator) -> np.ndarray:
    n = int(counts.sum())
    # One category per (bin, right/wrong): a multinomial draw resamples n images at once.
    p = np.concatenate([correct, counts - correct]) / n
    draws = rng.multinomial(n, p, size=n_boot)
    right, wrong = draws[:, :len(counts)], draws[:, len(counts):]
    in_bin = right + wrong
    accuracy = np.divide(right, in_bin, out=np.zeros(right.shape), where=in_bin > 0)
    return (np.abs(accuracy - confidence) * in_bin).sum(axis=1) / n


def n_boot_for(confidence: float = CONFIDENCE) -> int:
    """Bootstrap replicates for an interval at `confidence`: about TAIL_REPLICATES in each tail
    (2000 at 95%; 1 - 0.05/m intervals of Holm-corrected cells need m times more)."""
    tail = (1 - _check_confidence(confidence)) / 2
    return max(N_BOOT, int(math.ceil(TAIL_REPLICATES / tail)))


def bootstrap_interval(point: float, replicates: np.ndarray, confidence: float = CONFIDENCE,
                       n: int = 1, method: str = IMAGE_BOOTSTRAP) -> Interval:
    """The percentile interval of bootstrap `replicates` around the `point` estimate, named by
    `method` ("image bootstrap, one seed"; n: the seeds behind it)."""
    confidence = _check_confidence(confidence)
    reps = _finite(replicates)
    if math.isnan(point):
        return Interval(math.nan, math.nan, math.nan, 0, NO_RUNS, confidence)
    if not len(reps):   # runs without reliability bins: nothing to resample
        return Interval(float(point), math.nan, math.nan, n, ONE_RUN, confidence)
    low, high = np.quantile(reps, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(float(point), float(low), float(high), n, method, confidence)


def p_above(margin: float, values: np.ndarray | None = None, replicates: np.ndarray | None = None) -> float:
    """One-sided p-value that the mean exceeds `margin`: a t test over `values` (seeds, >= 2),
    else the bootstrap share of `replicates` at or below it (with the +1 that keeps it > 0)."""
    if values is not None and len(_finite(values)) >= 2:
        x = _finite(values)
        if all_equal(x):   # identical seeds (up to rounding): no spread to test against; the sign decides
            return 0.0 if x[0] > margin else 1.0
        return float(scipy_stats.ttest_1samp(x, margin, alternative="greater").pvalue)
    if replicates is not None and len(_finite(replicates)):
        reps = _finite(replicates)
        return float((1 + np.sum(reps <= margin)) / (1 + len(reps)))
    return math.nan


def holm(pvalues: Iterable[float], alpha: float = (1 - CONFIDENCE) / 2) -> np.ndarray:
    """Holm's step-down: which of the hypotheses to reject with family-wise error <= `alpha`
    (the default: one side of a 95% two-sided interval). NaN p-values are never rejected."""
    p = np.asarray(list(pvalues), dtype=float)
    p = np.where(np.isnan(p), np.inf, p)
    rejected = np.zeros(len(p), dtype=bool)
    for rank, index in enumerate(np.argsort(p, kind="stable")):
        if p[index] > alpha / (len(p) - rank):
            break
        rejected[index] = True
    return rejected


def simultaneous_confidence(cells: int, confidence: float = CONFIDENCE) -> float:
    """The confidence of each of `cells` intervals so that all hold together with `confidence`
    (Bonferroni; the worst cell's interval at this level clears a margin exactly when Holm
    rejects at least one cell's null)."""
    confidence = _check_confidence(confidence)
    return 1 - (1 - confidence) / max(int(cells), 1)
