"""Ledger: records in the ARCHITECTURE.md schema -> one tidy table, saved atomically.

`write_synthetic_study` (also used by test_plots / test_claims) writes records whose
accuracies follow a known rule, so tests can check the numbers the table reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reprolib.errors import ReprolibError
from reprolib.ledger import (LEDGER_NAME, build_ledger, label_map, load_ledger, record_to_row, reliability,
                             tickets_table, update_ledger)

ARMS = ["lp", "vp/ilm", "smm/ilm", "full/ilm", "narrow/ilm"]


def true_accuracy(arm: str, level: int, n_shot: int, seed: int, kind: str = "imp") -> float:
    """LP loses 0.5 points per level; prompts lose 3 (full data) or 5 (few-shot) points per level."""
    base = 0.80 if arm == "lp" else 0.70
    per_level = 0.005 if arm == "lp" else (0.03 if n_shot == -1 else 0.05)
    penalty = 0.02 if kind != "imp" else 0.0
    return base - per_level * level - penalty + 0.002 * (seed - 1) - (0.1 if n_shot != -1 else 0.0)


def make_record(target: str, arm: str, kind: str, level: int, n_shot: int, seed: int, ood: bool = False) -> dict:
    method, _, lmap = arm.partition("/")
    acc = true_accuracy(arm, level, n_shot, seed, kind)
    ece = 0.05 + 0.01 * level + 0.001 * seed
    run_id = f"{target}-{arm.replace('/', '_')}-{kind}{level}-{n_shot}-{seed}"
    counts = [0] * 13 + [40, 60]
    metrics = {"accuracy": acc, "ece": ece, "mce": 2 * ece, "nll": 1.0 + ece, "brier": 0.3 + ece,
               "legacy_rlt_ece": ece * (40.0 if method == "lp" else 0.5),
               "reliability": {"counts": counts, "confidence": [0.0] * 13 + [0.9, 0.97],
                               "accuracy": [0.0] * 13 + [0.9 - ece, 0.97 - ece],
                               "edges": [b / 15 for b in range(16)]}}
    if ood:
        metrics["ood"] = {"auroc_msp": 0.9 - 0.01 * level, "fpr95_msp": 0.3}
    return {"id": run_id,
            "config": {"profile": "smoke", "backbone": "small_resnet", "target": target, "method": method,
                       "label_map": lmap or None, "network": "dense" if level == 0 else "LT",
                       "ticket": {"kind": "dense" if level == 0 else kind, "level": level, "id": f"{kind}-{level}",
                                  "density": 0.8 ** level, "density_rlt": 0.8 ** level + 0.01},
                       "n_shot": n_shot, "seed": seed, "protocol": "smoke", "split": "official",
                       "prompt_size": 20 if method == "vp" else None},
            "metrics": metrics, "label_map": None if method == "lp" else [3, 1, 0],
            "curves": {"epoch": [1], "train_loss": [1.0], "train_accuracy": [acc], "test_accuracy": [acc]},
            "wall_time_s": 1.5, "versions": {}, "device": "cpu", "created": "2024-01-01T00:00:00+00:00"}


def write_synthetic_study(artifacts: Path, targets=("digits", "glyphs"), arms=ARMS, levels=(0, 2, 4),
                          n_shots=(5, -1), seeds=(1, 2), ood: bool = False,
                          upstream_drop_per_level: float = 0.002) -> int:
    """Records + tickets' sparsity.json under `artifacts`; returns the number of records."""
    runs = Path(artifacts) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    tickets = [("imp", lv) for lv in levels] + [("magnitude", max(levels)), ("random", max(levels))]
    for kind, level in tickets:
        folder = Path(artifacts) / "tickets" / kind / f"level_{level:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        upstream = 0.90 - upstream_drop_per_level * level - (0.05 if kind == "random" else 0.0)
        (folder / "sparsity.json").write_text(json.dumps(
            {"density": 0.8 ** level, "density_rlt": 0.8 ** level + 0.01, "upstream_test_accuracy": upstream}))
    count = 0
    for target in targets:
        for arm in arms:
            for kind, level in tickets:
                for n_shot in n_shots:
                    for seed in seeds:
                        record = make_record(target, arm, kind, level, n_shot, seed, ood)
                        (runs / f"{record['id']}.json").write_text(json.dumps(record))
                        count += 1
    return count


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


def test_empty_runs_give_an_empty_ledger_with_the_columns(tmp_path: Path) -> None:
    frame = build_ledger(tmp_path)
    assert len(frame) == 0 and {"accuracy", "ece", "arm", "density"} <= set(frame.columns)


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ReprolibError, match="no ledger"):
        load_ledger(tmp_path)
    with pytest.raises(ReprolibError, match="lacks 'config'"):
        record_to_row({"id": "x"})
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "broken.json").write_text("{")
    with pytest.raises(ReprolibError, match="broken.json"):
        build_ledger(tmp_path)
