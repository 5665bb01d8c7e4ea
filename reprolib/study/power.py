"""Power of a replicated design: variance components from a pilot, and what a design of R ticket
replicates x S seeds each can decide (docs/methods.md s.12; the planner, reprolib.sweep.planner,
prices it).

Model of a claim part's effect per unit (one seed of one ticket replicate): y = mu + b_r + e,
b_r the ticket replicate's deviation (sd `between`, ticket to ticket), e the seed's (sd
`within`). `components` estimates both from a pilot's per-unit effects (verdicts.Part.units)
with statsmodels' MixedLM (REML, a random intercept per replicate); a pilot with one replicate
gives `within` only. Claim 3's cells are pooled (the mean of their variances).

For a design (R, S) the two-level interval of the claim (stats.two_level_interval) has
half-width t(R - 1) x sqrt((between^2 + within^2 / S) / R), the t quantile at 97.5% (claim
3: at 1 - 2.5%/m, Bonferroni over its m cells, which bounds its max-T correction from above;
the planner scales it to the widest interval a study's own ledger measured).
With R = 1 it is t(S - 1) x within / sqrt(S), which covers the seeds on one ticket only.
`detectable` is the distance from the margin at which the one-sided test says "holds" with
80% power: statsmodels' TTestPower (the noncentral t) on the R replicate means (R = 1: the S
seeds), times their standard deviation.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from reprolib.study.verdicts import Part

POWER = 0.8
ALPHA = 0.025        # one side of a 95% interval


@dataclass(frozen=True)
class Variance:
    """A claim part's variance components per unit: `within` (seed to seed) and `between`
    (ticket replicate to replicate; None when the pilot has one replicate), from `units` units in
    `replicates` replicates of the pilot named by `source`."""

    within: float
    between: float | None
    replicates: int
    units: int
    source: str


def _mixed(values: np.ndarray, clusters: np.ndarray) -> tuple[float, float]:
    """(within variance, between variance) of a random-intercept model, REML (statsmodels MixedLM)."""
    import statsmodels.api as sm

    with warnings.catch_warnings():   # a between variance at its boundary (0) is an answer, not a failure
        warnings.simplefilter("ignore")
        fit = sm.MixedLM(values, np.ones((len(values), 1)), groups=clusters).fit(reml=True)
    return float(fit.scale), max(float(np.asarray(fit.cov_re)[0, 0]), 0.0)


def components(parts: list[Part], source: str) -> Variance:
    """The pooled variance components of `parts` (evaluated in detail: Part.units set)."""
    within, between, replicates, units = [], [], [], []
    for part in parts:
        values, clusters = part.units
        groups = len(set(clusters.tolist()))
        replicates.append(groups)
        units.append(len(values))
        if len(values) < 2:
            continue
        if groups >= 2 and len(values) > groups:
            w, b = _mixed(values, clusters)
            within.append(w)
            between.append(b)
        else:
            within.append(float(np.var(values, ddof=1)))
    if not within:
        return Variance(math.nan, None, min(replicates, default=0), min(units, default=0), source)
    pooled_between = math.sqrt(np.mean(between)) if between and len(between) == len(within) else None
    return Variance(math.sqrt(np.mean(within)), pooled_between, min(replicates), min(units), source)


def _spread(v: Variance, replicates: int, seeds: int) -> tuple[float, int]:
    """(sd of one replicate mean, or of one unit when R = 1; how many of those the interval averages)."""
    if replicates >= 2:
        between = v.between if v.between is not None else math.nan
        return math.sqrt(between ** 2 + v.within ** 2 / seeds), replicates
    return v.within, seeds


def half_width(v: Variance, replicates: int, seeds: int, cells: int = 1) -> float:
    """The expected half-width of the claim's interval under a design (module doc); NaN when the
    design has fewer than two replicate means (R >= 2) or seeds (R = 1)."""
    sd, n = _spread(v, replicates, seeds)
    if n < 2 or math.isnan(sd):
        return math.nan
    quantile = float(scipy_stats.t.ppf(1 - ALPHA / max(cells, 1), n - 1))
    return quantile * sd / math.sqrt(n)


def detectable(v: Variance, replicates: int, seeds: int, cells: int = 1) -> float:
    """The distance from its margin at which a part's effect is declared "holds" with POWER
    (one-sided ALPHA, ALPHA / cells for claim 3), by statsmodels' TTestPower."""
    from statsmodels.stats.power import TTestPower

    sd, n = _spread(v, replicates, seeds)
    if n < 2 or math.isnan(sd):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        effect = TTestPower().solve_power(effect_size=None, nobs=n, alpha=ALPHA / max(cells, 1), power=POWER,
                                          alternative="larger")
    return float(np.asarray(effect).item()) * sd
