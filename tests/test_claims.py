"""Claims: verdicts follow the intervals (synthetic ledgers built to make each claim hold or fail), and
the claims hold rarely on null ledgers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from reprolib.study.claims import FAILS, HOLDS, UNSURE, claims_table, judge, null_holds_rate
from reprolib.study.effects import null_ledger
from reprolib.study.stats import ONE_RUN, Interval
from reprolib.study.ledger import build_ledger
from synthetic_study import write_synthetic_study


def _per_seed(ledger, n_shot: int = -1):
    """Accuracy in points, one row per seed, one column per (target, arm, level): straight from the ledger."""
    rows = ledger[(ledger["ticket_kind"] == "imp") & (ledger["n_shot"] == n_shot)]
    return rows.pivot_table(index="seed", columns=["target", "arm", "level"], values="accuracy") * 100


def _t(values, confidence: float = 0.95) -> tuple[float, float, float]:
    values = np.asarray(values, dtype=float)
    low, high = scipy_stats.t.interval(confidence, len(values) - 1, loc=values.mean(), scale=scipy_stats.sem(values))
    return values.mean(), low, high


def test_synthetic_study_makes_all_three_claims_hold_with_their_intervals(lp_vp_ledger) -> None:
    table = claims_table(lp_vp_ledger)
    assert list(table.columns) == ["claim", "statement", "numbers", "verdict"]
    assert table["verdict"].tolist() == [HOLDS, HOLDS, HOLDS]
    # Claim 1, recomputed here: per seed, mean over targets of VP's drop minus LP's (dense -> level 4).
    acc = _per_seed(lp_vp_ledger)
    drop = {arm: acc.xs((arm, 0), axis=1, level=["arm", "level"]) - acc.xs((arm, 4), axis=1, level=["arm", "level"])
            for arm in ("lp", "vp/ilm")}
    mean, low, high = _t((drop["vp/ilm"] - drop["lp"]).mean(axis=1))
    assert 8 < mean < 12 and low > 2                                   # the rule: LP 0.5, VP 3 points per level
    assert f"vp/ilm drop minus LP's (full data): {mean:.1f} [{low:.1f}, {high:.1f}] (n=4, t over seeds)" in \
        table.loc[0, "numbers"]
    assert "dense lower in 100% of 4 cells" in table.loc[1, "numbers"]
    # Claim 3: the worst cell (digits, VP, level 4), its interval at 1 - 0.05/m for m = 4 cells (Holm's first step).
    gap = acc[("digits", "vp/ilm", 0)] - acc[("digits", "vp/ilm", 4)]
    mean, low, high = _t(gap, 1 - 0.05 / 4)
    assert f"digits: worst gap {mean:.1f} [98.75% {low:.1f}, {high:.1f}] (n=4, t over seeds) (vp/ilm, level 4)" in \
        table.loc[2, "numbers"]
    assert "of m=4" in table.loc[2, "numbers"]
    for statement in table["statement"]:                               # the test, in words
        assert "95% interval is Student's t over the seeds" in statement and "Holds when" in statement
    assert "Holm" in table.loc[2, "statement"] and "1 - 0.05/m" in table.loc[2, "statement"]


def test_judge_reads_intervals_against_margins() -> None:
    above, straddles, below = Interval(5, 3, 7, 4), Interval(2.5, 1, 4, 4), Interval(0, -1, 1, 4)
    assert judge((above, 2.0)) == HOLDS
    assert judge((straddles, 2.0)) == UNSURE
    assert judge((below, 2.0)) == FAILS
    assert judge((above, 2.0), (straddles, 2.0)) == UNSURE            # every part must clear
    assert judge((above, 2.0), (below, 1.5)) == FAILS                # one part clearly short: does not hold
    assert judge((Interval(5.0, float("nan"), float("nan"), 1, ONE_RUN), 2.0)) == UNSURE   # one run: no verdict


@pytest.mark.parametrize(("shift", "verdict"), [(0.0, HOLDS), (0.08, UNSURE), (0.12, FAILS)])
def test_claim_one_follows_its_interval(lp_vp_ledger, shift: float, verdict: str) -> None:
    """Shrinking VP's full-data drop (level 4 made `shift` better) moves the gap's interval across the 2-point margin."""
    ledger = lp_vp_ledger.copy()
    ticket = (ledger["arm"] == "vp/ilm") & (ledger["level"] == 4) & (ledger["n_shot"] == -1)
    ledger.loc[ticket, "accuracy"] += shift
    acc = _per_seed(ledger)
    drop = {arm: acc.xs((arm, 0), axis=1, level=["arm", "level"]) - acc.xs((arm, 4), axis=1, level=["arm", "level"])
            for arm in ("lp", "vp/ilm")}
    _, low, high = _t((drop["vp/ilm"] - drop["lp"]).mean(axis=1))
    assert (low > 2) == (verdict == HOLDS) and (high < 2) == (verdict == FAILS)   # the interval, as computed here
    assert claims_table(ledger).loc[0, "verdict"] == verdict


def test_flipped_results_do_not_hold(lp_vp_ledger) -> None:
    swapped = lp_vp_ledger.copy()
    lp, vp = swapped["arm"] == "lp", swapped["arm"] == "vp/ilm"
    swapped.loc[lp, "arm"], swapped.loc[vp, "arm"] = "vp/ilm", "lp"   # now "VP" is the robust one
    swapped["ece"] = 0.2 - swapped["ece"]                               # tickets better calibrated
    table = claims_table(swapped)
    assert table.loc[0, "verdict"] == FAILS
    assert table.loc[1, "verdict"] == FAILS


def test_null_ledger_permutes_results_within_paired_cells(lp_vp_ledger) -> None:
    null = null_ledger(lp_vp_ledger, np.random.default_rng(0))
    imp = lp_vp_ledger["ticket_kind"] == "imp"
    cell = ["target", "arm", "n_shot", "seed"]
    before = lp_vp_ledger[imp].groupby(cell)["accuracy"].apply(sorted)
    assert null[imp].groupby(cell)["accuracy"].apply(sorted).equals(before)     # same results in each cell...
    assert (null.loc[imp, "accuracy"] != lp_vp_ledger.loc[imp, "accuracy"]).mean() > 0.4   # ...moved between networks
    assert null.loc[~imp, "accuracy"].equals(lp_vp_ledger.loc[~imp, "accuracy"])         # baselines untouched
    assert (null["id"] != lp_vp_ledger["id"]).any() and null["level"].equals(lp_vp_ledger["level"])


def test_claims_hold_rarely_on_null_ledgers(lp_vp_ledger) -> None:
    """The test of the tests: on 200 null ledgers (dense and ticket results permuted within each
    paired cell) each claim says "holds" in at most 5% of the draws; on the real ledger all hold."""
    rates = null_holds_rate(lp_vp_ledger, draws=200, seed=0)
    assert rates["draws"].tolist() == [200] * 3
    assert (rates["rate"] <= 0.05).all() and rates["within_limit"].all(), rates.to_string()
    assert rates["rate"].tolist() == pytest.approx((rates["holds_in_null"] / 200).tolist())
    assert claims_table(lp_vp_ledger)["verdict"].tolist() == [HOLDS] * 3   # the tests have power


def test_missing_data_is_inconclusive(lp_vp_ledger, tmp_path: Path) -> None:
    dense_only = lp_vp_ledger[lp_vp_ledger["level"] == 0]
    table = claims_table(dense_only)
    assert table["verdict"].tolist() == [UNSURE, UNSURE, UNSURE]
    # Tickets whose upstream accuracy fell far below dense: claim 3 cannot be tested.
    write_synthetic_study(tmp_path, arms=("lp", "vp/ilm"), upstream_drop_per_level=0.02)
    assert claims_table(build_ledger(tmp_path)).loc[2, "verdict"] == UNSURE


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
    from reprolib.study.claims import NOT_MEASURED, oneshot_table

    oneshot = _as(lp_vp_ledger, "oneshot", "magnitude", upstream=False)
    assert claims_table(oneshot)["verdict"].tolist() == [NOT_MEASURED] * 3
    assert "one-shot pruned, not retrained" in claims_table(oneshot).loc[0, "numbers"]
    apart = oneshot_table(oneshot)
    assert apart["verdict"].tolist() == [HOLDS, HOLDS, NOT_MEASURED]
    assert all("[one-shot pruned, not retrained: not tickets]" in c for c in apart["claim"])
    assert "one-shot magnitude level" in apart.loc[0, "statement"] and "IMP" not in " ".join(apart["statement"])
    assert "an one-shot" not in " ".join(apart["statement"])
    assert apart.loc[0, "numbers"] == claims_table(lp_vp_ledger).loc[0, "numbers"]   # the same numbers, labelled
    measured = oneshot_table(_as(lp_vp_ledger, "oneshot", "magnitude", upstream=True))
    assert measured.loc[2, "verdict"] == HOLDS
    assert len(oneshot_table(lp_vp_ledger)) == 0                                    # no one-shot networks
    # Their null ledgers permute the one-shot networks with dense (the claims' networks, not baselines).
    rates = null_holds_rate(oneshot, draws=20, table=oneshot_table)
    assert rates["claim"].tolist() == apart["claim"].tolist() and rates["holds_in_null"].tolist()[2] == 0
    assert (rates["rate"] <= 0.05).all()
    assert null_holds_rate(oneshot)["holds_in_null"].tolist() == [0, 0, 0]   # "upstream not measured" never holds


def test_imported_tickets_need_a_measured_upstream(lp_vp_ledger) -> None:
    from reprolib.study.claims import NOT_MEASURED

    unmeasured = claims_table(_as(lp_vp_ledger, "imported", "imported", upstream=False))
    assert unmeasured["verdict"].tolist() == [NOT_MEASURED] * 3
    assert "tickets evaluate --imagenet" in unmeasured.loc[0, "numbers"]
    measured = claims_table(_as(lp_vp_ledger, "imported", "imported", upstream=True))
    assert measured["verdict"].tolist() == [HOLDS, HOLDS, HOLDS]
    assert measured.loc[2, "numbers"] == claims_table(lp_vp_ledger).loc[2, "numbers"]
    statements = " ".join(measured["statement"])   # named as what they are: not IMP tickets
    assert "imported tickets" in statements and "an imported ticket" in statements and "IMP" not in statements
    assert "IMP level 4" in claims_table(lp_vp_ledger).loc[0, "statement"]
    # a ledger saved before provenance existed reads as before: every ticket made here
    assert claims_table(lp_vp_ledger.drop(columns=["provenance"]))["verdict"].tolist() == [HOLDS, HOLDS, HOLDS]


def test_each_effect_uses_the_seeds_of_its_own_cells(lp_vp_ledger) -> None:
    """Full data with four seeds, few-shot with one: the full-data gap keeps its t interval over 4
    seeds; the few-shot comparison, with one seed, is an image bootstrap and says so."""
    ledger = lp_vp_ledger[(lp_vp_ledger["n_shot"] == -1) | (lp_vp_ledger["seed"] == 1)]
    numbers = claims_table(ledger).loc[0, "numbers"]
    gap, excess = numbers.split("; ")[:2]
    assert gap.endswith("(n=4, t over seeds)") and excess.endswith("(n=1, image bootstrap, no 2 seeds shared by every cell)")
