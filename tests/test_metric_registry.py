"""The metric registry on a real smoke run's saved scores, and `ledger --recompute-metrics`: every
entry gives a value in its range, the record's metrics are what the registry computes (the
metrics recorded before the registry to the last bit), and a metric missing from a finished
run's record comes back, identical, from its saved scores."""

from __future__ import annotations

import json
import math
import shutil

import pandas as pd
import pytest
import torch
from test_saved_scores import vp_run  # noqa: F401  (the real smoke run these tests read)

from reprolib.scores import registry
from reprolib.cli import main
from reprolib.errors import ReprolibError
from reprolib.records import DIGESTS, seal, verified_record, write_json_atomic
from reprolib.scores.ood_files import saved_scores
from reprolib.scores.saved import SavedScores, scores_path

pytestmark = pytest.mark.usefixtures("one_thread")
# What runs recorded before the metric registry (calibration_summary); every other scalar entry
# is one a finished run can lack and `--recompute-metrics` fills in (none is named here: a new
# entry is checked without an edit).
PRE_REGISTRY = ("accuracy", "ece", "mce", "nll", "brier", "legacy_rlt_ece")
NEW = tuple(name for name in registry.names() if name not in PRE_REGISTRY)


@pytest.fixture(scope="module")
def scores(vp_run):  # noqa: F811
    record, folder = vp_run
    return saved_scores(folder, record), record


def _values(metric, scores: SavedScores, config: dict) -> list:
    inputs = registry.MetricInputs(scores, config)
    if metric.kind == "ood":
        return [metric.compute(inputs, group) for group in scores.ood_logits]
    return [metric.compute(inputs)]


@pytest.mark.parametrize("metric", registry.entries(), ids=lambda m: m.name)
def test_every_entry_computes_a_value_in_its_range_from_saved_scores(metric, scores) -> None:
    saved, record = scores
    assert metric.direction in registry.DIRECTIONS and metric.display and metric.unit in registry.UNITS
    assert metric.label().startswith(metric.display)
    values = _values(metric, saved, record["config"])
    assert values, metric.name
    for value in values:
        if metric.kind == "bins":
            assert sum(value["counts"]) == record["config"]["n_test"] and len(value["edges"]) == 16
            continue
        low, high = metric.bounds
        assert isinstance(value, float) and math.isfinite(value) and low <= value <= high, (metric.name, value)
    if metric.kind == "scalar":
        assert record["metrics"][metric.name] == values[0]   # what the run recorded
    if metric.kind == "ood":
        assert [record["metrics"]["ood"][g][metric.name] for g in saved.ood_logits] == values


def test_the_registry_gives_the_pre_registry_metrics_to_the_bit(scores) -> None:
    """Bit-neutral: calibration_summary + ood.detection per OOD group (what runs recorded before the
    registry) and the registry agree exactly, key for key; the new metrics are added keys."""
    from reprolib.scores.metrics import calibration_summary
    from reprolib.scores.ood import detection

    saved, record = scores
    before = calibration_summary(saved.test_logits, saved.test_labels,
                                 legacy_batch_size=record["config"]["legacy_ece_batch"])
    before["ood"] = {group: detection(saved.test_logits, logits) for group, logits in saved.ood_logits.items()}
    now = registry.compute_metrics(saved, record["config"])
    assert list(now)[:len(before)] == list(before) and set(now) - set(before) == set(NEW)
    for key, value in before.items():
        assert now[key] == value, key
    assert registry.names()[:len(PRE_REGISTRY)] == list(PRE_REGISTRY) and NEW
    assert "legacy_rlt_ece" not in registry.compute_metrics(saved, {})   # a config without the batch


@pytest.mark.parametrize("metric", registry.entries(), ids=lambda m: m.name)
def test_every_entry_is_shown_exactly_where_its_places_say(metric) -> None:
    for place in registry.PLACES:
        assert (metric.name in registry.names(kind=metric.kind, place=place)) == (place in metric.shown_in), place
    assert registry.get(metric.name) is metric


def test_places_and_registration_are_checked() -> None:
    assert registry.names(place="calibration_figure")[:4] == ["ece", "mce", "nll", "brier"]
    assert registry.names(place="tracking")[:5] == ["accuracy", "ece", "mce", "nll", "brier"]
    assert registry.get("adaptive_ece").label() == "adaptive ECE (lower is better)"
    assert registry.get("accuracy").label() == "accuracy (%, higher is better)"
    with pytest.raises(ReprolibError, match="registered twice"):
        registry.register(registry.get("ece"))
    with pytest.raises(ReprolibError, match="metric place.*valid"):
        registry.register(registry.Metric("x", lambda i: 0.0, "lower", "X", shown_in=("nowhere",)))
    with pytest.raises(ReprolibError, match="metric 'nope'"):
        registry.get("nope")


@pytest.fixture
def artifacts(vp_run, tmp_path):  # noqa: F811
    """A copy of the smoke run as an artifacts folder (runs/ and a ledger), its record lacking the
    new metrics and one OOD value, as a record made before they were registered would."""
    record, folder = vp_run
    runs = tmp_path / "runs"
    runs.mkdir()
    for path in folder.glob(f"{record['id']}*"):
        shutil.copy(path, runs / path.name)
    stripped = json.loads(json.dumps(record))
    for name in NEW:
        del stripped["metrics"][name]
    del stripped["metrics"]["ood"]["noise"]["energy_fpr95"]
    write_json_atomic(runs / f"{record['id']}.json", seal(stripped, runs))   # sealed as its writer would have
    return tmp_path, record


def test_recompute_fills_in_missing_metrics_identically(artifacts, capsys) -> None:
    folder, record = artifacts
    assert main(["ledger", "--recompute-metrics", "--artifacts", str(folder)]) == 0
    out = capsys.readouterr().out
    filled = ", ".join(sorted([*NEW, "ood.noise.energy_fpr95"]))
    assert f"1 runs with saved scores: 1 filled in ({filled})" in out
    back = verified_record(folder / "runs" / f"{record['id']}.json")   # same id: metrics are not hashed
    assert back is not None and back["metrics"] == record["metrics"]
    ledger = pd.read_csv(folder / "ledger.csv")
    for name in set(NEW) & set(registry.names(place="ledger")):
        assert ledger.loc[0, name] == record["metrics"][name]
    assert ledger.loc[0, "ood_noise_energy_fpr95"] == record["metrics"]["ood"]["noise"]["energy_fpr95"]
    assert main(["ledger", "--recompute-metrics", "--artifacts", str(folder)]) == 0   # again: nothing to do
    assert "0 filled in (nothing new), 1 already complete, 0 differ" in capsys.readouterr().out


def test_recompute_refuses_a_record_its_scores_do_not_reproduce(artifacts, capsys) -> None:
    folder, record = artifacts
    path = folder / "runs" / f"{record['id']}.json"
    changed = json.loads(path.read_text())
    changed["metrics"]["ece"] += 1e-12
    write_json_atomic(path, seal(changed, path.parent))   # a record its scores do not give, sealed by its writer
    before = path.read_bytes()
    assert main(["ledger", "--recompute-metrics", "--artifacts", str(folder)]) == 1
    out = capsys.readouterr().out
    assert f"run {record['id']} DIFFERS from its saved scores in 1 metric(s) (ece: record" in out
    assert "record left unchanged" in out and path.read_bytes() == before


def test_a_cut_ood_file_stops_the_recompute_in_one_line_before_any_record_is_rewritten(artifacts, capsys) -> None:
    from reprolib.scores.ood_files import ood_path

    folder, record = artifacts
    noise = ood_path(folder / "runs", record["id"], "noise")
    noise.write_bytes(noise.read_bytes()[:60])
    path = folder / "runs" / f"{record['id']}.json"
    # a record made before files had digests (a sealed one names the cut file and is set aside: test_records)
    write_json_atomic(path, {k: v for k, v in json.loads(path.read_text()).items() if k != DIGESTS})
    before = path.read_bytes()
    assert main(["ledger", "--recompute-metrics", "--artifacts", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(noise) in err and "cannot be read" in err
    assert path.read_bytes() == before


def test_runs_without_saved_scores_are_counted_and_named(artifacts, capsys) -> None:
    folder, record = artifacts
    scores_path(folder / "runs", record["id"]).unlink()   # a run made before scores were saved (none listed)
    path = folder / "runs" / f"{record['id']}.json"
    write_json_atomic(path, seal(json.loads(path.read_text()), path.parent, [f"{record['id']}.npz"]))
    assert main(["ledger", "--recompute-metrics", "--artifacts", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (f"1 runs have no saved scores: rerun them to fill in {', '.join(sorted(NEW))}: {record['id']}"
            in lines)
    assert pd.isna(pd.read_csv(folder / "ledger.csv").loc[0, "adaptive_ece"])


def test_the_ledger_and_its_readers_take_their_metrics_from_the_registry(tmp_path) -> None:
    from reprolib.study import ledger
    from reprolib.study import tracking
    from reprolib.study.compare import compare_ledgers
    from reprolib.plots.common import METRIC_LABELS, shown_metrics

    assert ledger.METRIC_COLUMNS == registry.names(place="ledger")
    assert tracking.FINAL_METRICS == registry.names(place="tracking")
    assert METRIC_LABELS["accuracy"] == "accuracy (%)" and METRIC_LABELS["classwise_ece"] == "classwise ECE"
    frame = pd.DataFrame({"ece": [0.1], "adaptive_ece": [float("nan")], "mce": [0.2]})
    assert shown_metrics(frame, "calibration_figure") == ["ece", "mce"]   # a column without values is skipped
    pd.DataFrame({"id": ["a"], "ece": [0.1], "classwise_ece": [0.2]}).to_csv(tmp_path / "before.csv", index=False)
    pd.DataFrame({"id": ["a"], "ece": [0.1], "classwise_ece": [0.3]}).to_csv(tmp_path / "after.csv", index=False)
    diff = compare_ledgers(tmp_path / "before.csv", tmp_path / "after.csv")
    assert [(c.column, c.identical, c.compared) for c in diff.columns] == [("ece", 1, 1), ("classwise_ece", 0, 1)]
    assert diff.columns[1].max_abs_diff == pytest.approx(0.1) and not diff.identical
    tiny = SavedScores(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
    assert registry.compute_metrics(tiny, {"legacy_ece_batch": 1})["ood"] == {}


def test_recompute_needs_the_run_records_or_the_scores_archive(tmp_path, capsys) -> None:
    (tmp_path / "ledger.csv").write_text("id\n")   # a shipped ledger without its runs or scores
    assert main(["ledger", "--recompute-metrics", "--artifacts", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"--recompute-metrics: no {tmp_path / 'runs'} and no {tmp_path / 'scores.npz'}; valid: " in err
    assert (tmp_path / "ledger.csv").read_text() == "id\n"


def test_the_registry_is_read_without_loading_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, reprolib.scores.registry as r, reprolib.study.effects; r.names(place='ledger'); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
