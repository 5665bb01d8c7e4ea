"""Claims: verdicts follow the numbers (synthetic ledgers built to make each claim hold or fail)."""

from __future__ import annotations

from pathlib import Path

from reprolib.claims import FAILS, HOLDS, UNSURE, claims_table
from reprolib.ledger import build_ledger
from synthetic_study import write_synthetic_study


def test_synthetic_study_makes_all_three_claims_hold_with_their_numbers(lp_vp_ledger) -> None:
    table = claims_table(lp_vp_ledger)
    assert list(table.columns) == ["claim", "statement", "numbers", "verdict"]
    assert table["verdict"].tolist() == [HOLDS, HOLDS, HOLDS]
    # Claim 1: LP drops 0.5 x 4 = 2.0 points, VP 3 x 4 = 12.0 at full data and 5 x 4 = 20.0 few-shot.
    assert "LP drop 2.0, vp/ilm drop 12.0 (gap 10.0)" in table.loc[0, "numbers"]
    assert "vp/ilm drop 20.0" in table.loc[0, "numbers"]
    assert "dense lower in 100% of 4 cells" in table.loc[1, "numbers"]
    # Claim 3: upstream within 2 points for levels 2 and 4; VP gap at level 4 is 12 points.
    assert "worst gap 12.0 (vp/ilm, level 4)" in table.loc[2, "numbers"]


def test_flipped_results_do_not_hold(lp_vp_ledger) -> None:
    swapped = lp_vp_ledger.copy()
    lp, vp = swapped["arm"] == "lp", swapped["arm"] == "vp/ilm"
    swapped.loc[lp, "arm"], swapped.loc[vp, "arm"] = "vp/ilm", "lp"   # now "VP" is the robust one
    swapped["ece"] = 0.2 - swapped["ece"]                               # tickets better calibrated
    table = claims_table(swapped)
    assert table.loc[0, "verdict"] == FAILS
    assert table.loc[1, "verdict"] == FAILS


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
    from reprolib.claims import NOT_MEASURED, oneshot_table

    oneshot = _as(lp_vp_ledger, "oneshot", "magnitude", upstream=False)
    assert claims_table(oneshot)["verdict"].tolist() == [NOT_MEASURED] * 3
    assert "one-shot pruned, not retrained" in claims_table(oneshot).loc[0, "numbers"]
    apart = oneshot_table(oneshot)
    assert apart["verdict"].tolist() == [HOLDS, HOLDS, NOT_MEASURED]
    assert all("[one-shot pruned, not retrained: not tickets]" in c for c in apart["claim"])
    assert "one-shot magnitude level" in apart.loc[0, "statement"] and "IMP" not in " ".join(apart["statement"])
    assert "an one-shot" not in " ".join(apart["statement"])
    assert "LP drop 2.0, vp/ilm drop 12.0 (gap 10.0)" in apart.loc[0, "numbers"]   # the same numbers, labelled
    measured = oneshot_table(_as(lp_vp_ledger, "oneshot", "magnitude", upstream=True))
    assert measured.loc[2, "verdict"] == HOLDS
    assert len(oneshot_table(lp_vp_ledger)) == 0                                    # no one-shot networks


def test_imported_tickets_need_a_measured_upstream(lp_vp_ledger) -> None:
    from reprolib.claims import NOT_MEASURED

    unmeasured = claims_table(_as(lp_vp_ledger, "imported", "imported", upstream=False))
    assert unmeasured["verdict"].tolist() == [NOT_MEASURED] * 3
    assert "tickets evaluate --imagenet" in unmeasured.loc[0, "numbers"]
    measured = claims_table(_as(lp_vp_ledger, "imported", "imported", upstream=True))
    assert measured["verdict"].tolist() == [HOLDS, HOLDS, HOLDS]
    assert "worst gap 12.0 (vp/ilm, level 4)" in measured.loc[2, "numbers"]
    statements = " ".join(measured["statement"])   # named as what they are: not IMP tickets
    assert "imported tickets" in statements and "an imported ticket" in statements and "IMP" not in statements
    assert "IMP level 4" in claims_table(lp_vp_ledger).loc[0, "statement"]
    # a ledger saved before provenance existed reads as before: every ticket made here
    assert claims_table(lp_vp_ledger.drop(columns=["provenance"]))["verdict"].tolist() == [HOLDS, HOLDS, HOLDS]
