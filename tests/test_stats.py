"""reprolib.study.stats: intervals against scipy computed here, paired effects, the image bootstrap, Holm."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from reprolib.errors import ReprolibError
from reprolib.study.stats import (IMAGE_BOOTSTRAP, NO_RUNS, ONE_RUN, T_OVER_SEEDS, Interval, bins_metric,
                            bootstrap_interval, holm, image_replicates, p_above, paired_effect,
                            simultaneous_confidence, t_interval)


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
