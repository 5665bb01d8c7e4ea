"""Claims: verdicts follow the intervals (synthetic ledgers built to make each claim hold or fail),
intervals are two-level over ticket replicates, a claim a study cannot test says why, and both
verdicts err at most 5% when the effect sits at the margin (and more when the analysis ignores
the replicates, which the null test must catch)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from reprolib.study import effects
from reprolib.study.claims import FAILS, HOLDS, NOT_TESTABLE, UNSURE, claims_of, claims_table, oneshot_table
from reprolib.study.effects import Cells, center_networks, flip_networks
from reprolib.study.ledger import build_ledger
from reprolib.study.nulls import NULL_LIMIT, null_rates, rate_text
from reprolib.study.stats import ONE_RUN, Interval, t_interval
from reprolib.study.verdicts import Part, judge
from synthetic_study import write_synthetic_study


@pytest.fixture(scope="module")
def replicated_ledger(tmp_path_factory):
    """LP and VP-ILM on four ticket replicates x three seeds each, with seed noise (1 point) and
    ticket-to-ticket noise (2 points): the claims' effects vary from ticket to ticket."""
    artifacts = tmp_path_factory.mktemp("replicated_study")
    write_synthetic_study(artifacts, arms=("lp", "vp/ilm"), seeds=(1, 2, 3), noise=0.01, replicates=4,
                          replicate_noise=0.02)
    return build_ledger(artifacts)


def _per_unit(ledger, n_shot: int = -1):
    """Accuracy in points, one row per (replicate, seed) unit, one column per (target, arm, level)."""
    rows = ledger[(ledger["ticket_kind"] == "imp") & (ledger["n_shot"] == n_shot)]
    return rows.pivot_table(index=["replicate", "seed"], columns=["target", "arm", "level"], values="accuracy") * 100


def _t(values, confidence: float = 0.95) -> tuple[float, float, float]:
    values = np.asarray(values, dtype=float)
    low, high = scipy_stats.t.interval(confidence, len(values) - 1, loc=values.mean(), scale=scipy_stats.sem(values))
    return values.mean(), low, high


def _gap(acc) -> pd.Series:
    """Claim 1's first part per unit: mean over targets of VP's drop dense -> level 4 minus LP's."""
    drop = {arm: acc.xs((arm, 0), axis=1, level=["arm", "level"]) - acc.xs((arm, 4), axis=1, level=["arm", "level"])
            for arm in ("lp", "vp/ilm")}
    return (drop["vp/ilm"] - drop["lp"]).mean(axis=1)


def test_synthetic_study_makes_all_three_claims_hold_with_their_intervals(lp_vp_ledger) -> None:
    table = claims_table(lp_vp_ledger)
    assert list(table.columns) == ["claim", "statement", "numbers", "verdict"]
    assert table["verdict"].tolist() == [HOLDS, HOLDS, HOLDS]
    mean, low, high = _t(_gap(_per_unit(lp_vp_ledger)))
    assert 8 < mean < 12 and low > 2                                   # the rule: LP 0.5, VP 3 points per level
    assert f"vp/ilm drop minus LP's (full data): {mean:.1f} [{low:.1f}, {high:.1f}] (n=4, t over seeds)" in \
        table.loc[0, "numbers"]
    assert "dense lower in 100% of 4 cells" in table.loc[1, "numbers"]
    # Claim 3 with one replicate of four seeds: 16 sign patterns cannot reach a 2.5% tail, so each
    # cell's interval is Bonferroni's at 1 - 0.05/m for m = 4 cells.
    acc = _per_unit(lp_vp_ledger)
    mean, low, high = _t(acc[("digits", "vp/ilm", 0)] - acc[("digits", "vp/ilm", 4)], 1 - 0.05 / 4)
    assert f"digits: worst gap {mean:.1f} [98.75% {low:.1f}, {high:.1f}] (n=4, t over seeds) (vp/ilm, level 4)" in \
        table.loc[2, "numbers"]
    assert "of m=4" in table.loc[2, "numbers"]
    for statement in table["statement"]:                               # the test, in words
        assert "two-level, clustered by ticket replicate" in statement and "Holds when" in statement
    assert "max-T sign-flip permutation" in table.loc[2, "statement"]


def test_replicated_intervals_are_t_over_the_replicate_means(replicated_ledger) -> None:
    """Two-level: the interval of a paired effect is the t interval of its 4 replicate means (balanced
    design), wider than a t over the 12 units that forgets which ticket each came from."""
    gap = _gap(_per_unit(replicated_ledger))
    assert gap.index.get_level_values("seed").tolist()[:4] == [1, 2, 3, 1001]   # replicate r's own seeds
    mean, low, high = _t(gap.groupby(level="replicate").mean())
    numbers = claims_table(replicated_ledger).loc[0, "numbers"]
    assert f"{mean:.1f} [{low:.1f}, {high:.1f}] (n=12 in 4 replicates, two-level: t over ticket replicates)" in numbers
    naive = t_interval(gap.to_numpy())
    assert naive.half_width < (high - low) / 2                        # the ticket-to-ticket variation counted


def test_judge_reads_every_part_or_any_cell() -> None:
    def part(low, high, margin=2.0, fail=None):
        interval = Interval((low + high) / 2, low, high, 4)
        return Part("p", margin, interval, fail or interval)

    above, straddles, below = part(3, 7), part(1, 4), part(-1, 1)
    assert judge([above]) == HOLDS and judge([straddles]) == UNSURE and judge([below]) == FAILS
    assert judge([above, straddles]) == UNSURE                          # every part must clear
    assert judge([above, below]) == FAILS                               # one part clearly short: does not hold
    one_run = Part("p", 2.0, Interval(5.0, math.nan, math.nan, 1, ONE_RUN), Interval(5.0, math.nan, math.nan, 1, ONE_RUN))
    assert judge([one_run]) == UNSURE                                    # one run: no verdict
    # "does not hold" reads the Bonferroni interval: its 95% interval below, its 97.5% one not
    wide = part(-1, 1, fail=Interval(0.0, -1.5, 2.5, 4))
    assert judge([above, wide]) == UNSURE
    # "for at least one cell" (claim 3): any clears -> holds; every one below -> does not hold
    assert judge([straddles, above], every=False) == HOLDS
    assert judge([below, below], every=False) == FAILS and judge([below, straddles], every=False) == UNSURE


@pytest.mark.parametrize(("shift", "verdict"), [(0.0, HOLDS), (0.08, UNSURE), (0.12, FAILS)])
def test_claim_one_follows_its_interval(lp_vp_ledger, shift: float, verdict: str) -> None:
    """Shrinking VP's full-data drop (level 4 made `shift` better) moves the gap's interval across
    the 2-point margin; "does not hold" reads the 97.5% interval (two parts, Bonferroni)."""
    ledger = lp_vp_ledger.copy()
    ticket = (ledger["arm"] == "vp/ilm") & (ledger["level"] == 4) & (ledger["n_shot"] == -1)
    ledger.loc[ticket, "accuracy"] += shift
    gap = _gap(_per_unit(ledger))
    _, low, _ = _t(gap)
    _, _, high = _t(gap, 0.975)
    assert (low > 2) == (verdict == HOLDS) and (high < 2) == (verdict == FAILS)   # the intervals, as computed here
    assert claims_table(ledger).loc[0, "verdict"] == verdict


def test_flipped_results_do_not_hold(lp_vp_ledger) -> None:
    swapped = lp_vp_ledger.copy()
    lp, vp = swapped["arm"] == "lp", swapped["arm"] == "vp/ilm"
    swapped.loc[lp, "arm"], swapped.loc[vp, "arm"] = "vp/ilm", "lp"   # now "VP" is the robust one
    swapped["ece"] = 0.2 - swapped["ece"]                               # tickets better calibrated
    table = claims_table(swapped)
    assert table.loc[0, "verdict"] == FAILS
    assert table.loc[1, "verdict"] == FAILS


def test_missing_cells_are_not_testable_and_say_why(lp_vp_ledger, tmp_path: Path) -> None:
    dense_only = claims_table(lp_vp_ledger[lp_vp_ledger["level"] == 0])
    assert dense_only["verdict"].tolist() == [NOT_TESTABLE] * 3
    assert "needs LP and VP runs on the dense model and a sparser IMP level" in dense_only.loc[0, "numbers"]
    few_only = claims_table(lp_vp_ledger[lp_vp_ledger["n_shot"] != -1])
    assert few_only.loc[0, "verdict"] == NOT_TESTABLE and "no full-data runs" in few_only.loc[0, "numbers"]
    assert few_only.loc[2, "verdict"] == NOT_TESTABLE and "no full-data prompt runs" in few_only.loc[2, "numbers"]
    # Tickets whose upstream accuracy fell far below dense: claim 3 has no ticket to compare.
    write_synthetic_study(tmp_path, arms=("lp", "vp/ilm"), upstream_drop_per_level=0.02)
    far = claims_table(build_ledger(tmp_path)).loc[2]
    assert far["verdict"] == NOT_TESTABLE and "within 2 points of the dense upstream accuracy" in far["numbers"]


def test_an_inconclusive_claim_says_how_many_units_would_decide(lp_vp_ledger) -> None:
    ledger = lp_vp_ledger.copy()
    ticket = (ledger["arm"] == "vp/ilm") & (ledger["level"] == 4) & (ledger["n_shot"] == -1)
    ledger.loc[ticket, "accuracy"] += 0.08
    row = claims_table(ledger).loc[0]
    gap = _gap(_per_unit(ledger))
    mean, low, high = _t(gap)
    units = math.ceil(4 * ((high - low) / 2 / abs(mean - 2)) ** 2)
    assert row["verdict"] == UNSURE
    assert f"gap lies {abs(mean - 2):.3g} from its margin" in row["numbers"]
    assert f"about {units} units (now 4) would decide it" in row["numbers"]


def test_null_draws_centre_the_effects_and_sign_replicates_and_seeds(replicated_ledger) -> None:
    """A null draw's table: every paired difference ticket - dense centred to mean 0; then each
    replicate's mean difference gets a random sign and each unit's deviation from it another, the
    same signs in every cell; the dense runs unchanged."""
    rows = replicated_ledger[replicated_ledger["arm"] == "vp/ilm"]
    table = Cells(rows, ["target", "arm", "level", "n_shot"], "accuracy").seeds
    centred = center_networks(table)
    drawn = flip_networks(centred, np.random.default_rng(0))
    replicate = np.asarray(table.columns.get_level_values("replicate"))
    parts = []
    for key in [k for k in table.index if k[2] > 0]:
        dense = (key[0], key[1], 0, key[3])
        before = (table.loc[key] - table.loc[dense]).to_numpy()
        difference = (centred.loc[key] - centred.loc[dense]).to_numpy()
        assert difference.mean() == pytest.approx(0.0, abs=1e-12)
        assert difference == pytest.approx(before - before.mean())   # each unit keeps its own deviation
        assert drawn.loc[dense].to_numpy() == pytest.approx(centred.loc[dense].to_numpy())
        means = np.array([difference[replicate == r].mean() for r in replicate])
        parts.append((means, difference - means, (drawn.loc[key] - drawn.loc[dense]).to_numpy()))
    # one sign per replicate (its mean) and one per unit (its deviation) explain every cell at once
    found = []
    for by_replicate in itertools.product((-1.0, 1.0), repeat=len(set(replicate))):
        eps = np.array(by_replicate)[np.unique(replicate, return_inverse=True)[1]]
        deltas = [(after - eps * means) / within for means, within, after in parts]
        if all(np.allclose(np.abs(d), 1.0) for d in deltas) and all(np.allclose(d, deltas[0]) for d in deltas):
            found.append((by_replicate, tuple(np.round(deltas[0]))))
    assert len(found) == 1
    by_replicate, by_unit = found[0]
    assert set(by_replicate) == {-1.0, 1.0} and set(by_unit) == {-1.0, 1.0}


def test_both_verdicts_err_at_most_five_percent_at_the_margin(replicated_ledger) -> None:
    """The test of the tests: with each claim's effect exactly at its margin, "holds" and "does not
    hold" each come out in at most 5% of 200 null draws; the rate carries its Clopper-Pearson bound."""
    rates = null_rates(claims_of(replicated_ledger), draws=200, seed=0)
    assert rates["draws"].tolist() == [200] * 3
    assert (rates["holds_rate"] <= NULL_LIMIT).all() and (rates["fails_rate"] <= NULL_LIMIT).all(), rates.to_string()
    assert rates["within_limit"].all()
    assert rates["holds_rate"].tolist() == pytest.approx((rates["holds_at_margin"] / 200).tolist())
    first = rates.iloc[0]
    upper = scipy_stats.beta.ppf(0.975, first["holds_at_margin"] + 1, 200 - first["holds_at_margin"])
    assert first["holds_upper"] == pytest.approx(upper)
    assert f"<= {upper:.1%}" in rate_text(first)
    assert rates["holds_case"].tolist()[2] == "all 4 cells at the margin"
    assert claims_table(replicated_ledger)["verdict"].tolist() == [HOLDS, HOLDS, HOLDS]   # the tests have power


def test_the_null_test_catches_an_analysis_that_ignores_the_replicates(tmp_path, monkeypatch) -> None:
    """Intervals over the units as if they were independent (forgetting their ticket replicate) are
    too narrow when tickets differ: at the margin claim 1 then says "holds" far more than 5%."""
    write_synthetic_study(tmp_path, targets=("digits",), arms=("lp", "vp/ilm"), levels=(0, 4), seeds=(1, 2, 3),
                          noise=0.002, replicates=6, replicate_noise=0.03)
    claims = claims_of(build_ledger(tmp_path))[:1]
    sound = null_rates(claims, draws=200).iloc[0]
    def forgetful(values, clusters, confidence=0.95):
        return [t_interval(values, c) for c in confidence] if isinstance(confidence, tuple) else \
            t_interval(values, confidence)

    monkeypatch.setattr(effects, "two_level_interval", forgetful)
    broken = null_rates(claims, draws=200).iloc[0]
    assert sound["holds_rate"] <= NULL_LIMIT < broken["holds_rate"], (sound["holds_rate"], broken["holds_rate"])


def test_a_claim_the_study_cannot_test_has_no_null_rate(lp_vp_ledger) -> None:
    oneshot = _as(lp_vp_ledger, "oneshot", "magnitude", upstream=False)
    rates = null_rates(claims_of(oneshot), draws=20)
    assert rates["draws"].tolist() == [0, 0, 0] and rates["holds_rate"].isna().all()
    assert all(rate_text(r) == "not testable here: no null rate" for r in rates.to_dict("records"))


def _as(ledger, provenance: str, kind: str, upstream: bool):
    """The synthetic study's IMP tickets relabelled as other networks (the baselines dropped)."""
    frame = ledger[ledger["ticket_kind"] == "imp"].copy()
    sparse = frame["network"] != "dense"
    frame.loc[sparse, "provenance"] = provenance
    frame.loc[sparse, "ticket_kind"] = kind
    if not upstream:
        frame["upstream_accuracy"] = float("nan")
    return frame


def test_ledger_infers_provenance_of_records_without_it(lp_vp_ledger) -> None:
    assert set(lp_vp_ledger.loc[lp_vp_ledger["network"] == "dense", "provenance"]) == {"dense"}
    # small_resnet's tickets are made here (registry spec tickets="imp"), baselines included
    assert set(lp_vp_ledger.loc[lp_vp_ledger["network"] == "LT", "provenance"]) == {"here"}


def test_one_shot_networks_are_not_tickets(lp_vp_ledger) -> None:
    oneshot = _as(lp_vp_ledger, "oneshot", "magnitude", upstream=False)
    assert claims_table(oneshot)["verdict"].tolist() == [NOT_TESTABLE] * 3
    assert "pruned once and not retrained" in claims_table(oneshot).loc[0, "numbers"]
    apart = oneshot_table(oneshot)
    assert apart["verdict"].tolist() == [HOLDS, HOLDS, NOT_TESTABLE]
    assert "upstream accuracy not measured" in apart.loc[2, "numbers"]
    assert all("[one-shot pruned, not retrained: not tickets]" in c for c in apart["claim"])
    assert "one-shot magnitude level" in apart.loc[0, "statement"] and "IMP" not in " ".join(apart["statement"])
    assert "an one-shot" not in " ".join(apart["statement"])
    assert apart.loc[0, "numbers"] == claims_table(lp_vp_ledger).loc[0, "numbers"]   # the same numbers, labelled
    measured = oneshot_table(_as(lp_vp_ledger, "oneshot", "magnitude", upstream=True))
    assert measured.loc[2, "verdict"] == HOLDS
    assert len(oneshot_table(lp_vp_ledger)) == 0                                    # no one-shot networks


def test_imported_tickets_need_a_measured_upstream(lp_vp_ledger) -> None:
    unmeasured = claims_table(_as(lp_vp_ledger, "imported", "imported", upstream=False))
    assert unmeasured["verdict"].tolist() == [NOT_TESTABLE] * 3
    assert "tickets evaluate --imagenet" in unmeasured.loc[0, "numbers"]
    measured = claims_table(_as(lp_vp_ledger, "imported", "imported", upstream=True))
    assert measured["verdict"].tolist() == [HOLDS, HOLDS, HOLDS]
    assert measured.loc[2, "numbers"] == claims_table(lp_vp_ledger).loc[2, "numbers"]
    statements = " ".join(measured["statement"])   # named as what they are: not IMP tickets
    assert "imported tickets" in statements and "an imported ticket" in statements and "IMP" not in statements
    assert "IMP level 4" in claims_table(lp_vp_ledger).loc[0, "statement"]
    # a ledger saved before provenance existed reads as before: every ticket made here
    assert claims_table(lp_vp_ledger.drop(columns=["provenance"]))["verdict"].tolist() == [HOLDS, HOLDS, HOLDS]


def test_a_claim_reads_its_well_covered_cells(lp_vp_ledger) -> None:
    """A design that runs some cells on many more units than others (a subgrid's seeds): the claims
    read the well-covered cells; claim 1 without well-covered few-shot runs says why."""
    ledger = lp_vp_ledger[(lp_vp_ledger["n_shot"] == -1) | (lp_vp_ledger["seed"] == 1)]
    row = claims_table(ledger).loc[0]
    assert row["verdict"] == NOT_TESTABLE
    assert "n_shot <= 10 runs have fewer than half the (replicate, seed) units of its other runs" in row["numbers"]
    second = claims_table(ledger).loc[1, "numbers"]
    assert "dense lower in 100% of 2 cells" in second and "n_shot [-1]" in second   # the full-data cells only
    assert claims_table(ledger[ledger["seed"] == 1]).loc[0, "numbers"].split("; ")[1].endswith(
        "(n=1, image bootstrap, one seed)")                               # one seed everywhere: kept, bootstrapped


def test_with_replicates_a_claim_reads_the_cells_run_on_most_of_them(replicated_ledger) -> None:
    """Replicate 1 also runs cells only its figures need (here level 2): the claims read the cells
    run on every replicate, whose 12 units then share every cell."""
    design = replicated_ledger[(replicated_ledger["replicate"] == 1) | (replicated_ledger["level"] != 2)]
    table = claims_table(design)
    assert "(n=12 in 4 replicates, two-level: t over ticket replicates)" in table.loc[0, "numbers"].split("; ")[0]
    assert "tickets at levels [4]" in table.loc[1, "numbers"]            # level 2: replicate 1 only, left out
    assert "of m=2" in table.loc[2, "numbers"] and "levels [4]" in table.loc[2, "numbers"]
    assert "tickets at levels [2, 4]" in claims_table(replicated_ledger).loc[1, "numbers"]
