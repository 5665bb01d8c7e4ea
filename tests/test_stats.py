"""reprolib.study.stats: intervals against scipy computed here, paired effects, the image bootstrap, Holm."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from reprolib.errors import ReprolibError
from reprolib.study.stats import (IMAGE_BOOTSTRAP, NO_RUNS, ONE_RUN, SEEDS_EQUAL, T_OVER_SEEDS, TWO_LEVEL, Interval,
                                  bins_metric, bootstrap_interval, holm, image_replicates, max_t_bounds, p_above,
                                  paired_effect, rate_upper, simultaneous_confidence, t_interval, two_level_interval)


@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_t_interval_matches_scipy(confidence: float) -> None:
    values = [31.2, 34.9, 28.4, 41.0, 37.3]
    low, high = scipy_stats.t.interval(confidence, len(values) - 1, loc=np.mean(values),
                                       scale=scipy_stats.sem(values))
    got = t_interval(values, confidence)
    assert (got.mean, got.n, got.method) == (pytest.approx(34.56), 5, T_OVER_SEEDS)
    assert got.low == pytest.approx(low) and got.high == pytest.approx(high)
    level = "" if confidence == 0.95 else "90% "                # a level other than 95% is named
    assert got.text(1) == f"34.6 [{level}{low:.1f}, {high:.1f}] (n=5, t over seeds)"


def test_one_run_and_no_runs_say_so() -> None:
    one = t_interval([0.42, float("nan")])
    assert (one.mean, one.n, one.method, one.one_run) == (0.42, 1, ONE_RUN, True)
    assert math.isnan(one.low) and math.isnan(one.high)
    assert one.text(2) == "0.42 (one run)" and one.cell(2) == "0.42 (one run)"
    assert not one.clears(0.0) and not one.below(1.0)        # no interval: never a verdict
    none = t_interval([])
    assert none.n == 0 and none.method == NO_RUNS and none.text() == NO_RUNS
    with pytest.raises(ReprolibError, match="confidence 1.5"):
        t_interval([1.0, 2.0], confidence=1.5)


def test_paired_effect_removes_shared_seed_noise() -> None:
    seed_noise = {1: -6.0, 2: 4.0, 3: 1.0, 4: 7.0}             # shared by both networks of a seed
    extra = {1: 0.3, 2: -0.2, 3: 0.1, 4: -0.1}
    dense = {s: 40.0 + n for s, n in seed_noise.items()}
    ticket = {s: 37.0 + n + extra[s] for s, n in seed_noise.items()} | {5: 99.0}   # seed 5 has no pair
    effect = paired_effect(dense, ticket)
    diffs = [3.0 - extra[s] for s in (1, 2, 3, 4)]
    low, high = scipy_stats.t.interval(0.95, 3, loc=np.mean(diffs), scale=scipy_stats.sem(diffs))
    assert effect.n == 4 and effect.mean == pytest.approx(3.0 - np.mean(list(extra.values())))
    assert (effect.low, effect.high) == (pytest.approx(low), pytest.approx(high))
    assert effect.clears(2.0)                                   # positive and narrow: [2.5, 3.4]
    # Unpaired, the seed noise would swamp it: each network's own interval is about +-9 points wide.
    assert t_interval(list(dense.values())).high - t_interval(list(dense.values())).low > 10 * (high - low)
    assert paired_effect(ticket, dense).mean == pytest.approx(-effect.mean)
    with pytest.raises(ReprolibError, match="a_by_seed"):
        paired_effect([1.0, 2.0], dense)


BINS = {"counts": [0, 20, 80], "accuracy": [0.0, 0.5, 0.875], "confidence": [0.0, 0.6, 0.9]}


def test_image_bootstrap_of_accuracy_and_ece_is_seeded_and_centred() -> None:
    accuracy = image_replicates(BINS, "accuracy", 20_000, np.random.default_rng(1))
    assert bins_metric(BINS, "accuracy") == pytest.approx(0.8)   # (10 + 70) / 100 images right
    assert accuracy.mean() == pytest.approx(0.8, abs=0.002)
    assert accuracy.std() == pytest.approx(math.sqrt(0.8 * 0.2 / 100), rel=0.05)   # binomial sd over 100 images
    again = image_replicates(BINS, "accuracy", 20_000, np.random.default_rng(1))
    assert np.array_equal(accuracy, again)
    ece = image_replicates(BINS, "ece", 20_000, np.random.default_rng(2))
    assert bins_metric(BINS, "ece") == pytest.approx(0.2 * 0.1 + 0.8 * 0.025)     # sum of |acc - conf| x share
    assert abs(np.median(ece) - 0.04) < 0.01 and ece.std() > 0.005
    with pytest.raises(ReprolibError, match="bootstrap metric 'nll'"):
        image_replicates(BINS, "nll")


def test_bootstrap_interval_is_the_percentile_interval_and_named() -> None:
    reps = np.random.default_rng(0).normal(5.0, 1.0, 4000)
    got = bootstrap_interval(5.1, reps)
    assert (got.low, got.high) == tuple(pytest.approx(q) for q in np.quantile(reps, [0.025, 0.975]))
    assert got.mean == 5.1 and got.method == IMAGE_BOOTSTRAP and "image bootstrap, one seed" in got.text()
    assert bootstrap_interval(5.1, np.full(10, np.nan)).text() == "5.1 (one run)"   # no bins to resample


def test_holm_steps_down_and_p_above_is_scipys_t_test() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005], alpha=0.05).tolist() == [True, False, False, True]
    assert holm([0.01, 0.012, 0.013], alpha=0.05).tolist() == [True, True, True]
    assert holm([float("nan"), 0.001], alpha=0.05).tolist() == [False, True]
    values = np.array([6.1, 7.9, 5.4, 8.8])
    assert p_above(5.0, values=values) == pytest.approx(
        scipy_stats.ttest_1samp(values, 5.0, alternative="greater").pvalue)
    assert p_above(5.0, replicates=np.array([4.0, 6.0, 7.0, 8.0])) == pytest.approx(2 / 5)
    assert simultaneous_confidence(10) == pytest.approx(0.995)


def test_interval_verdict_helpers_and_cells() -> None:
    above, straddle = Interval(3.0, 2.5, 3.5, 4), Interval(3.0, 1.0, 5.0, 4)
    assert above.clears(2.0) and not above.below(2.0) and not straddle.clears(2.0) and not straddle.below(2.0)
    assert Interval(-1.0, -2.0, -0.5, 3).below(0.0)
    assert above.cell(1) == "3.0 [2.5, 3.5] n=4" and above.scaled(100).high == 350.0


def test_seeds_that_agree_exactly_say_so_and_decide_nothing() -> None:
    equal = t_interval([88.3, 88.3, 88.3])
    assert (equal.method, equal.low, equal.high) == (SEEDS_EQUAL, 88.3, 88.3)
    assert equal.cell(1) == "88.3 (all 3 seeds equal)"                  # not "88.3 [88.3, 88.3] n=3"
    assert equal.text(1) == "88.3 (all 3 seeds equal: no interval)"
    assert not equal.clears(0.0) and not equal.below(100.0)


def test_two_level_interval_is_the_t_interval_of_the_replicate_means() -> None:
    """Balanced (replicate, seed) units: statsmodels' cluster-robust OLS with R - 1 degrees of freedom
    gives exactly the Student t interval of the R replicate means, computed here with scipy."""
    rng = np.random.default_rng(3)
    means = rng.normal(0.0, 2.0, 5)
    values = np.repeat(means, 4) + rng.normal(0.0, 1.0, 20)
    replicates = np.repeat([1, 2, 3, 4, 5], 4)
    got = two_level_interval(values, replicates)
    by_replicate = values.reshape(5, 4).mean(axis=1)
    low, high = scipy_stats.t.interval(0.95, 4, loc=by_replicate.mean(), scale=scipy_stats.sem(by_replicate))
    assert (got.low, got.high) == (pytest.approx(low), pytest.approx(high))
    assert (got.n, got.replicates, got.method) == (20, 5, TWO_LEVEL)
    assert got.cell(2).endswith("n=20 in 5 replicates") and "two-level: t over ticket replicates" in got.text()
    at_two = two_level_interval(values, replicates, (0.95, 0.975))   # one fit, two confidences
    assert at_two[0] == got and at_two[1].half_width > got.half_width
    one = two_level_interval(values, np.ones(20))                      # one replicate: t over its seeds
    assert one == t_interval(values)
    assert two_level_interval(values[:4], replicates[:4]).method == T_OVER_SEEDS


def test_max_t_bounds_find_a_planted_gap_and_hold_together() -> None:
    """Simultaneous intervals over 32 cells by max-T sign flips over 8 replicates: a cell with a
    planted 6-point gap clears 0 while no null cell does; over 300 null studies some lower bound
    exceeds 0 in at most 5% of them; where the cells move together (one replicate moves them
    all), the critical value is well below Bonferroni's, which ignores that."""
    rng = np.random.default_rng(7)
    clusters = np.repeat(np.arange(8), 3)

    def study(planted: float = 0.0, common: float = 1.0, own: float = 1.0) -> np.ndarray:
        shared = rng.normal(0.0, common, (8, 1))                           # each replicate moves every cell
        values = np.repeat(rng.normal(0.0, own, (8, 32)) + shared, 3, axis=0) + rng.normal(0.0, 2.0, (24, 32))
        values[:, 0] += planted
        return values

    intervals = max_t_bounds(study(6.0), clusters)
    assert intervals[0].clears(0.0) and not any(i.clears(0.0) for i in intervals[1:])
    assert intervals[0].method == "max-T sign flips over 8 ticket replicates" and intervals[0].replicates == 8
    errors = sum(any(i.clears(0.0) for i in max_t_bounds(study(), clusters)) for _ in range(300))
    assert errors / 300 <= 0.05
    together = study(common=3.0, own=0.2)
    bonferroni = two_level_interval(together[:, 1], clusters, simultaneous_confidence(32))
    assert max_t_bounds(together, clusters)[1].half_width < 0.8 * bonferroni.half_width
    few = max_t_bounds(study()[:12], clusters[:12])                    # 4 replicates: 16 patterns, Bonferroni t
    assert few[0].method == TWO_LEVEL and few[0].confidence == pytest.approx(simultaneous_confidence(32))


def test_rate_upper_is_clopper_pearson() -> None:
    assert rate_upper(0, 500) == pytest.approx(1 - 0.025 ** (1 / 500))   # 0 in 500: below 0.74%
    assert rate_upper(0, 500) == pytest.approx(0.0074, abs=5e-5)
    assert rate_upper(5, 200) == pytest.approx(scipy_stats.beta.ppf(0.975, 6, 195))
    assert math.isnan(rate_upper(0, 0))
