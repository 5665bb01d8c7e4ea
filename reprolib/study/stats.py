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
- `two_level_interval(values, replicates)`: the two-level interval of runs nested (ticket
  replicate, seed): statsmodels' OLS mean with cluster-robust (CR1) errors over the replicates and
  a t with (replicates - 1) degrees of freedom, so the interval covers ticket-to-ticket variation,
  not only the seeds on one ticket (balanced designs: the t interval over replicate means).
- `max_t_bounds(values, clusters)`: simultaneous intervals for many cells at once, by a max-T
  sign-flip permutation over the clusters (Westfall-Young; claim 3's correction).
- `rate_upper(count, n)`: the Clopper-Pearson upper bound of an error rate (statsmodels).

Quantiles come from scipy.stats.t, statsmodels and numpy's seeded generators; nothing here
hand-writes a distribution. docs/methods.md s.12.
"""

from __future__ import annotations

import itertools
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
TWO_LEVEL = "two-level: t over ticket replicates"
SEEDS_EQUAL = "all seeds equal"     # a zero-width "interval": the runs show no noise at all
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
    replicates: int = 1          # ticket replicates behind the n runs (TWO_LEVEL: the clusters)

    @property
    def one_run(self) -> bool:
        """True when there is a single run and so no interval (the word "one run")."""
        return self.method == ONE_RUN

    def clears(self, margin: float) -> bool:
        """The whole interval lies above `margin` (False without an interval, or a zero-width one
        from seeds that agree exactly: no spread, no evidence)."""
        return bool(not math.isnan(self.low) and self.method != SEEDS_EQUAL and self.low > margin)

    def below(self, margin: float) -> bool:
        """The whole interval lies below `margin` (False without an interval, or a zero-width one)."""
        return bool(not math.isnan(self.high) and self.method != SEEDS_EQUAL and self.high < margin)

    @property
    def half_width(self) -> float:
        """Half the interval's width (NaN without an interval)."""
        return (self.high - self.low) / 2

    def scaled(self, factor: float) -> Interval:
        """The same interval with every number multiplied by `factor` (> 0; e.g. 100 for percent)."""
        return Interval(self.mean * factor, self.low * factor, self.high * factor, self.n, self.method,
                        self.confidence, self.replicates)

    def _runs(self) -> str:
        """'n=3' or, two-level, 'n=24 in 8 ticket replicates'."""
        return f"n={self.n}" if self.replicates <= 1 else f"n={self.n} in {self.replicates} replicates"

    def text(self, digits: int = 1, signed: bool = False) -> str:
        """'12.3 [10.1, 14.5] (n=3, t over seeds)'; one run: '12.3 (one run)'; no runs: 'no runs'."""
        if self.method == NO_RUNS or math.isnan(self.mean):
            return NO_RUNS
        sign = "+" if signed else ""
        mean = f"{self.mean:{sign}.{digits}f}"
        if self.one_run:
            return f"{mean} ({ONE_RUN})"
        if self.method == SEEDS_EQUAL:
            return f"{mean} (all {self.n} seeds equal: no interval)"
        level = "" if self.confidence == CONFIDENCE else f"{100 * self.confidence:.4g}% "
        return f"{mean} [{level}{self.low:{sign}.{digits}f}, {self.high:{sign}.{digits}f}] ({self._runs()}, {self.method})"

    def cell(self, digits: int = 1) -> str:
        """The compact form for table cells: '12.3 [10.1, 14.5] n=3', '12.3 (one run)', or
        '12.3 (all 3 seeds equal)' (no spread, so no interval to show)."""
        if self.method == NO_RUNS or math.isnan(self.mean):
            return ""
        if self.one_run:
            return f"{self.mean:.{digits}f} ({ONE_RUN})"
        if self.method == SEEDS_EQUAL:
            return f"{self.mean:.{digits}f} (all {self.n} seeds equal)"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}] {self._runs()}"


def _check_confidence(confidence: float) -> float:
    if not isinstance(confidence, (int, float)) or isinstance(confidence, bool) or not 0 < confidence < 1:
        raise ReprolibError(f"confidence {confidence!r} must be a number strictly between 0 and 1, e.g. 0.95")
    return float(confidence)


def _finite(values: Iterable[float]) -> np.ndarray:
    array = np.asarray(list(values) if not isinstance(values, (np.ndarray, pd.Series)) else values, dtype=float)
    return array[~np.isnan(array)]


def t_interval(values: Iterable[float], confidence: float = CONFIDENCE) -> Interval:
    """The mean of `values` (NaNs dropped) and its Student-t interval, n - 1 degrees of freedom.

    One value: the mean with NaN bounds and method "one run"; none: all NaN, "no runs"; values
    that agree exactly: a zero-width interval named SEEDS_EQUAL (the runs show no noise)."""
    confidence = _check_confidence(confidence)
    x = _finite(values)
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, NO_RUNS, confidence)
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1, ONE_RUN, confidence)
    if all_equal(x):
        return Interval(mean, mean, mean, n, SEEDS_EQUAL, confidence)
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


def two_level_interval(values: Iterable[float], replicates: Iterable,
                       confidence: float | tuple[float, ...] = CONFIDENCE) -> Interval | list[Interval]:
    """The mean of per-unit `values` (one per (replicate, seed) unit; NaNs dropped) and its interval
    over the ticket `replicates` the units belong to: statsmodels OLS of the values on a constant
    with cluster-robust (CR1) errors, clustered by replicate, and Student's t with (replicates - 1)
    degrees of freedom. Ticket-to-ticket variation is then part of the interval; in a balanced
    design it is the t interval over the replicate means. One replicate: t over the seeds
    (t_interval), which covers the seeds on that one ticket only. A tuple of confidences gives a
    list of intervals from the one fit."""
    import statsmodels.api as sm

    levels = [_check_confidence(c) for c in (confidence if isinstance(confidence, tuple) else (confidence,))]
    x = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    groups = np.asarray(list(replicates) if not isinstance(replicates, np.ndarray) else replicates)
    keep = ~np.isnan(x)
    x, groups = x[keep], groups[keep]
    _, codes = np.unique(groups, return_inverse=True)
    clusters = int(codes.max()) + 1 if len(codes) else 0
    if clusters < 2 or all_equal(x):
        out = [t_interval(x, level) for level in levels]
    else:
        fit = sm.OLS(x, np.ones(len(x))).fit(cov_type="cluster", cov_kwds={"groups": codes}, use_t=True)
        out = []
        for level in levels:
            low, high = (float(v) for v in fit.conf_int(alpha=1 - level)[0])
            out.append(Interval(float(x.mean()), low, high, len(x), TWO_LEVEL, level, clusters))
    return out if isinstance(confidence, tuple) else out[0]


MAX_T = "max-T sign flips over"   # the method words of max_t_bounds' intervals
EXACT_FLIPS = 14                 # up to 2**14 sign patterns are enumerated, more are sampled
SAMPLED_FLIPS = 8192
MIN_FLIPS = 64                   # fewer patterns cannot resolve a 2.5% tail: Bonferroni t instead


def max_t_bounds(values: np.ndarray, clusters: Iterable, confidence: float = CONFIDENCE,
                 seed: int = BOOTSTRAP_SEED) -> list[Interval]:
    """Simultaneous intervals for the columns (cells) of `values` (units x cells, complete rows):
    each cell's mean +- q x its cluster-robust (CR1) standard error, all covering together with
    `confidence`. q is the (1 + confidence) / 2 quantile of max over cells of the studentised
    mean under random sign flips of the clusters' centred residuals (a max-T wild cluster
    permutation, Westfall and Young): it uses the cells' correlation, so it is below Bonferroni's.
    Every pattern is enumerated up to 2**EXACT_FLIPS, else SAMPLED_FLIPS are drawn (seeded). With
    fewer than MIN_FLIPS patterns the 2.5% tail cannot be resolved, and each cell's interval is
    the two-level t at the Bonferroni confidence instead (simultaneous_confidence)."""
    x = np.asarray(values, dtype=float)
    _, codes = np.unique(np.asarray(list(clusters)), return_inverse=True)
    g = int(codes.max()) + 1 if len(codes) else 0
    if g < 2 or 2 ** g < MIN_FLIPS:   # clusters of one unit each: the seeds of one replicate, plain t
        level, groups = simultaneous_confidence(x.shape[1], confidence), codes if g < len(x) else np.zeros(len(x))
        return [two_level_interval(x[:, c], groups, level) for c in range(x.shape[1])]
    means = x.mean(axis=0)
    u, sizes = len(x), np.bincount(codes, minlength=g)[:, None]
    scores = np.zeros((g, x.shape[1]))
    np.add.at(scores, codes, (x - means) / u)                       # cluster sums of residuals / U
    se = np.sqrt(g / (g - 1) * (scores ** 2).sum(axis=0))
    signs = _sign_patterns(g, seed)                                 # patterns x clusters
    shift = signs @ scores                                          # flipped mean - mean, per cell
    flipped = signs[:, :, None] * scores[None] - sizes[None] / u * shift[:, None, :]
    se_star = np.sqrt(g / (g - 1) * (flipped ** 2).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(se_star > 0, shift / se_star, 0.0).max(axis=1)
    q = float(np.quantile(stat, (1 + confidence) / 2))
    method = f"{MAX_T} {g} {'ticket replicates' if g < u else 'seeds'}"
    return [Interval(float(m), float(m - q * e), float(m + q * e), u, method if e > 0 else SEEDS_EQUAL, confidence,
                     g if g < u else 1) for m, e in zip(means, se)]


def _sign_patterns(g: int, seed: int) -> np.ndarray:
    """Every +-1 pattern over g clusters (g <= EXACT_FLIPS), else SAMPLED_FLIPS seeded ones."""
    if g <= EXACT_FLIPS:
        return np.array(list(itertools.product((1.0, -1.0), repeat=g)))
    return np.random.default_rng(seed).choice((1.0, -1.0), size=(SAMPLED_FLIPS, g))


def rate_upper(count: int, n: int, confidence: float = CONFIDENCE) -> float:
    """The Clopper-Pearson upper bound of a rate seen `count` times in `n` draws (the upper end
    of statsmodels' two-sided exact "beta" interval at `confidence`; NaN for no draws)."""
    from statsmodels.stats.proportion import proportion_confint

    if n <= 0:
        return math.nan
    return float(proportion_confint(int(count), int(n), alpha=1 - _check_confidence(confidence), method="beta")[1])
