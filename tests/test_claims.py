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
