"""Ledger: records in the ARCHITECTURE.md schema -> one tidy table, saved atomically.

The records come from `synthetic_study.write_synthetic_study`, whose accuracies follow a
known rule (`true_accuracy`), so tests can check the numbers the table reports.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reprolib.errors import ReprolibError
from reprolib.study.ledger import (LEDGER_NAME, build_ledger, label_map, load_ledger, record_to_row, reliability,
                             tickets_table, update_ledger)
from synthetic_study import true_accuracy, write_synthetic_study

def test_ledger_has_one_row_per_record_with_flattened_values(tmp_path: Path) -> None:
    count = write_synthetic_study(tmp_path, ood=True)
    (tmp_path / "runs" / ".partial.json.tmp").write_text("{not json")   # a writer in flight: ignored
    frame = build_ledger(tmp_path)
    assert len(frame) == count == 2 * 5 * 5 * 2 * 2
    assert frame["id"].is_unique
    row = frame[(frame["target"] == "glyphs") & (frame["arm"] == "vp/ilm") & (frame["level"] == 4)
                & (frame["ticket_kind"] == "imp") & (frame["n_shot"] == -1) & (frame["seed"] == 2)].iloc[0]
    assert row["accuracy"] == pytest.approx(true_accuracy("vp/ilm", 4, -1, 2))
    assert row["density"] == pytest.approx(0.8 ** 4)
    assert row["method"] == "vp" and row["label_map"] == "ilm" and row["network"] == "LT"
    assert row["upstream_accuracy"] == pytest.approx(0.90 - 0.008)
    assert row["ood_auroc_msp"] == pytest.approx(0.86)
    assert reliability(row)["counts"][-1] == 60
    assert label_map(row) == [3, 1, 0]
    lp = frame[frame["arm"] == "lp"].iloc[0]
    assert lp["label_map"] is None or lp["label_map"] != lp["label_map"]   # None / NaN for LP
    for column in ["id", "profile", "backbone", "target", "method", "label_map", "network", "ticket_kind", "level",
                   "density", "density_rlt", "n_shot", "seed", "protocol", "accuracy", "ece", "mce", "nll",
                   "brier", "legacy_rlt_ece", "wall_time_s"]:
        assert column in frame.columns


def test_saved_ledger_round_trips_and_no_temp_files_remain(tmp_path: Path) -> None:
    write_synthetic_study(tmp_path, targets=("digits",), arms=("lp", "vp/ilm"), seeds=(1,))
    built = update_ledger(tmp_path)
    loaded = load_ledger(tmp_path)
    assert len(loaded) == len(built) == 2 * 5 * 2
    assert loaded["accuracy"].tolist() == pytest.approx(built["accuracy"].tolist())
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [LEDGER_NAME, "tickets.csv"]
    tickets = tickets_table(tmp_path)
    assert tickets[tickets["ticket_kind"] == "imp"]["level"].tolist() == [0, 2, 4]
    # paths relative to the artifacts folder: the shipped tickets.csv is the same on every machine
    assert tickets[tickets["ticket_kind"] == "imp"]["path"].tolist() == [f"tickets/imp/level_0{lv}" for lv in (0, 2, 4)]


def test_empty_runs_give_an_empty_ledger_with_the_columns(tmp_path: Path) -> None:
    frame = build_ledger(tmp_path)
    assert len(frame) == 0 and {"accuracy", "ece", "arm", "density"} <= set(frame.columns)


def test_bad_inputs_are_one_line_errors(tmp_path: Path, capsys) -> None:
    with pytest.raises(ReprolibError, match="no ledger"):
        load_ledger(tmp_path)
    with pytest.raises(ReprolibError, match="lacks 'config'"):
        record_to_row({"id": "x"})
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "broken.json").write_text("{")
    assert len(build_ledger(tmp_path)) == 0          # a truncated record is set aside, the ledger still builds
    warning = capsys.readouterr().err.strip()
    assert "broken.json is bad: it is not valid JSON" in warning and len(warning.splitlines()) == 1
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["broken.bad.json"]


def test_failed_runs_are_rows_with_status_and_error_and_no_numbers(tmp_path: Path) -> None:
    from reprolib.study.ledger import failed_runs
    from reprolib.records import write_failure

    write_synthetic_study(tmp_path, targets=("digits",), arms=("lp",), seeds=(1,))
    config = {"profile": "embedded", "target": "digits", "method": "vp", "label_map": "ilm", "network": "LT",
              "kind": "imp", "level": 4, "n_shot": 10, "seed": 2, "protocol": "embedded"}
    write_failure(tmp_path / "runs", "abc123", config, "ReprolibError: n_shot 10 is too big", "Traceback ...\n")
    frame = update_ledger(tmp_path)
    assert len(frame) == 10 + 1 and (frame["status"] == "ok").sum() == 10
    failed = failed_runs(frame)
    assert failed[["target", "arm", "ticket_kind", "level", "n_shot", "seed"]].iloc[0].tolist() == \
        ["digits", "vp/ilm", "imp", 4, 10, 2]
    assert failed["error"].tolist() == ["ReprolibError: n_shot 10 is too big"]
    assert frame.loc[frame["status"] == "failed", "accuracy"].isna().all()
    assert len(load_ledger(tmp_path)) == 10                    # tables and figures: finished runs only
    assert len(load_ledger(tmp_path, failed=True)) == 11
    assert len(failed_runs(load_ledger(tmp_path, failed=True))) == 1


def test_a_failure_whose_run_later_finished_is_not_a_row(tmp_path: Path) -> None:
    from reprolib.records import write_failure

    write_synthetic_study(tmp_path, targets=("digits",), arms=("lp",), seeds=(1,))
    done = sorted((tmp_path / "runs").glob("*.json"))[0].stem
    write_failure(tmp_path / "runs", done, {"target": "digits", "method": "lp"}, "OSError: disk", "tb")
    frame = build_ledger(tmp_path)
    assert len(frame) == 10 and set(frame["status"]) == {"ok"}


def test_a_shipped_ledger_and_tickets_table_are_never_replaced_by_tables_that_drop_them(tmp_path: Path, capsys) -> None:
    """The checkout's tables hold runs and tickets of which this machine has no trace: a rebuild from
    what is here (one failed run, no tickets) keeps them and writes its own tables beside them."""
    import shutil

    from reprolib import paths
    from reprolib.records import write_failure
    from reprolib.study.ledger import update_ledger

    write_synthetic_study(tmp_path, targets=("digits",), arms=("lp",), seeds=(1,))
    shipped = update_ledger(tmp_path)
    saved = {name: (tmp_path / name).read_bytes() for name in ("ledger.csv", "tickets.csv")}
    shutil.rmtree(tmp_path / "runs")                     # a fresh clone: the tables, not what made them
    shutil.rmtree(tmp_path / "tickets")
    write_failure(paths.runs_dir(tmp_path), shipped.loc[0, "id"], {"target": "digits"}, "RuntimeError: no ticket", "")
    capsys.readouterr()
    frame = update_ledger(tmp_path)
    assert len(frame) == 1 and frame.loc[0, "status"] == "failed"
    assert {name: (tmp_path / name).read_bytes() for name in saved} == saved           # both kept, byte for byte
    assert len(load_ledger(tmp_path)) == len(shipped)
    here = (tmp_path / "ledger.here.csv").read_text()
    assert "RuntimeError: no ticket" in here and (tmp_path / "tickets.here.csv").is_file()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith(f"note: kept {tmp_path / 'ledger.csv'}: it holds {len(shipped)} "
                                               "finished runs that are not here")
    # a study retrained on purpose (notebook 02's retrain, make figures FORCE=1): its ledger replaces the shipped one
    assert len(update_ledger(tmp_path, replace=True)) == 1 and len(load_ledger(tmp_path, failed=True)) == 1


def test_a_run_set_aside_as_bad_does_leave_the_saved_ledger(tmp_path: Path) -> None:
    from reprolib.study.ledger import update_ledger

    write_synthetic_study(tmp_path, targets=("digits",), arms=("lp",), seeds=(1,))
    assert len(update_ledger(tmp_path)) == 10
    victim = sorted((tmp_path / "runs").glob("*.json"))[0]
    victim.rename(victim.with_name(f"{victim.stem}.bad.json"))    # what verified_record does to a damaged run
    assert len(update_ledger(tmp_path)) == 9 and len(load_ledger(tmp_path)) == 9
    assert not (tmp_path / "ledger.here.csv").exists()


def test_records_made_under_other_versions_are_flagged_in_a_column_and_one_line(tmp_path: Path, capsys) -> None:
    from reprolib.records import versions, write_json_atomic
    from synthetic_study import make_record

    now = versions()
    current, older = make_record("digits", "lp", "imp", 0, 5, 1), make_record("digits", "lp", "imp", 0, 5, 2)
    current["versions"] = now
    older["versions"] = {**now, "torch": "2.0.0", "numpy": "1.26.0"}
    for record in (current, older):
        write_json_atomic(tmp_path / "runs" / f"{record['id']}.json", record)
    frame = build_ledger(tmp_path).set_index("seed")
    assert frame.loc[1, "other_versions"] is None or frame.loc[1, "other_versions"] != frame.loc[1, "other_versions"]
    assert frame.loc[2, "other_versions"] == f"numpy 1.26.0 (now {now['numpy']}); torch 2.0.0 (now {now['torch']})"
    lines = [line for line in capsys.readouterr().err.splitlines() if "other versions" in line]
    assert lines == ["ledger: 1 of 2 runs were made under other versions than this code (numpy 1.26.0, torch 2.0.0; "
                     "column other_versions); a rerun may not reproduce their numbers"]
