"""compare_ledgers: pairs runs and finds every changed metric, however small."""

import math

import pandas as pd
import pytest

from reprolib.study.compare import STUDY_KEY, compare_ledgers
from reprolib.errors import ReprolibError


def _ledger(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _row(run_id, accuracy, ece=0.05, ood=0.9, seed=1):
    return {"id": run_id, "profile": "smoke", "target": "digits", "arm": "lp", "network": "dense",
            "ticket_kind": "dense", "level": 0, "n_shot": -1, "seed": seed, "accuracy": accuracy,
            "ece": ece, "mce": 0.1, "nll": 0.3, "brier": 0.2, "legacy_rlt_ece": float("nan"),
            "ood_noise_msp_auroc": ood}


def test_identical_ledgers(tmp_path):
    rows = [_row("a", 0.9), _row("b", 0.8, seed=2)]
    diff = compare_ledgers(_ledger(tmp_path / "x.csv", rows), _ledger(tmp_path / "y.csv", rows))
    assert diff.identical and diff.paired == 2
    assert {c.column for c in diff.columns} >= {"accuracy", "ece", "legacy_rlt_ece", "ood_noise_msp_auroc"}
    assert all(c.identical == c.compared == 2 for c in diff.columns)   # NaN == NaN counts as equal


def test_one_ulp_and_missing_runs_are_found(tmp_path):
    before = _ledger(tmp_path / "x.csv", [_row("a", 0.9), _row("b", 0.8, seed=2), _row("c", 0.7, seed=3)])
    after = _ledger(tmp_path / "y.csv", [_row("a", math.nextafter(0.9, 1.0)), _row("b", 0.8, seed=2, ood=0.5),
                                         _row("d", 0.1, seed=4)])
    diff = compare_ledgers(before, after)
    by_name = {c.column: c for c in diff.columns}
    assert not diff.identical
    assert (diff.paired, diff.only_before, diff.only_after) == (2, 1, 1)
    assert by_name["accuracy"].identical == 1 and 0 < by_name["accuracy"].max_abs_diff < 1e-15
    assert by_name["ood_noise_msp_auroc"].max_abs_diff == pytest.approx(0.4)
    assert by_name["ece"].identical == 2
    assert diff.lines()[-1] == "verdict: DIFFERENT"


def test_pairing_by_study_key_when_ids_differ(tmp_path):
    before = _ledger(tmp_path / "x.csv", [_row("a", 0.9)])
    after = _ledger(tmp_path / "y.csv", [_row("z", 0.9)])
    assert compare_ledgers(before, after).paired == 0
    assert compare_ledgers(before, after, on=STUDY_KEY).identical


def test_errors_are_one_line(tmp_path):
    with pytest.raises(ReprolibError, match="no ledger at"):
        compare_ledgers(tmp_path / "none.csv", tmp_path / "none.csv")
    dup = _ledger(tmp_path / "d.csv", [_row("a", 0.9), _row("b", 0.9)])
    with pytest.raises(ReprolibError, match="several runs per"):
        compare_ledgers(dup, dup, on=("target",))


def test_cli_exit_codes(tmp_path, capsys):
    from reprolib.cli import main

    same = _ledger(tmp_path / "x.csv", [_row("a", 0.9)])
    other = _ledger(tmp_path / "y.csv", [_row("a", 0.8)])
    assert main(["compare", str(same), str(same)]) == 0
    assert capsys.readouterr().out.strip().endswith("verdict: identical")
    assert main(["compare", str(same), str(other)]) == 1
    assert "accuracy               identical 0/1" in capsys.readouterr().out
    assert main(["compare", str(same), str(tmp_path / "missing.csv")]) == 2
