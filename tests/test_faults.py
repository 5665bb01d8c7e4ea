"""Faults while working: corrupt records, a deleted mask, a corrupt feature cache, a full disk, bad tickets.

Each corrupt record is named in one line, moved aside and rerun; the ledger never shows it and is
rebuilt without it; a cut or missing ticket file is remade; a full disk leaves no orphan file.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch

from disk_faults import FullDisk
from smoke_runs import one_smoke_run
from reprolib import records
from reprolib.errors import ReprolibError
from reprolib.sparsity import masks as M

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def lp_record(tmp_path_factory):
    """(config, folder) of one real smoke LP run (1 epoch, full data) whose record tests corrupt copies of."""
    folder = tmp_path_factory.mktemp("lp_record")
    cfg, _ = one_smoke_run(folder, "lp", -1)
    return cfg, folder


def _set(record: dict, dotted: str, value) -> dict:
    *path, last = dotted.split(".")
    node = record
    for key in path:
        node = node[key]
    node[last] = value
    return record


CORRUPTIONS = {
    "truncated": lambda text, rec: text[: len(text) // 2],
    "empty object": lambda text, rec: "{}",
    "missing accuracy": lambda text, rec: json.dumps(
        rec | {"metrics": {k: v for k, v in rec["metrics"].items() if k != "accuracy"}}),
    "NaN ece": lambda text, rec: json.dumps(_set(rec, "metrics.ece", math.nan)),
    "edited config": lambda text, rec: json.dumps(_set(_set(rec, "config.seed", 7), "metrics.accuracy", 0.99)),
    "another id": lambda text, rec: json.dumps(_set(rec, "id", "0123456789abcdef")),
}
REASONS = {"truncated": "not valid JSON", "empty object": "it is empty", "missing accuracy": "'accuracy' is missing",
           "NaN ece": "'ece' is nan", "edited config": "its config hashes to", "another id": "is not its file name's"}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_each_corrupt_record_is_named_moved_aside_and_rerun(lp_record, tmp_path, kind, capsys):
    from reprolib.transfer.run import run_transfer

    cfg, folder = lp_record
    (good,) = folder.glob("*.json")
    text = good.read_text()
    runs = tmp_path / "runs"
    runs.mkdir()
    bad = runs / good.name
    bad.write_text(CORRUPTIONS[kind](text, json.loads(text)))
    assert not records.record_exists(bad)
    line = capsys.readouterr().err.strip()
    assert len(line.splitlines()) == 1 and f"{bad} is bad: " in line and REASONS[kind] in line
    assert (runs / f"{good.stem}.bad.json").is_file() and not bad.exists()
    rerun = run_transfer(cfg.replace(results_path=str(runs)))          # the next sweep reruns it
    assert rerun["metrics"] == json.loads(text)["metrics"]             # and gets the same numbers back
    assert records.verified_record(bad) == rerun


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGES = {   # what is done to a finished run's files -> the reason named
    "metrics edited by hand": (lambda runs, rid: _edit(runs / f"{rid}.json", accuracy=0.99, ece=0.01),
                               "its content does not match its digest (edited by hand?)"),
    "truncated scores": (lambda runs, rid: _cut(runs / f"{rid}.scores.npz"),
                         "its file RID.scores.npz does not match its digest"),
    "random scores": (lambda runs, rid: (runs / f"{rid}.scores.npz").write_bytes(os.urandom(4096)),
                      "its file RID.scores.npz does not match its digest"),
    "deleted scores": (lambda runs, rid: (runs / f"{rid}.scores.npz").unlink(), "its file RID.scores.npz is missing"),
    "truncated learned state": (lambda runs, rid: _cut(runs / f"{rid}.npz"), "its file RID.npz does not match its digest"),
}


def _edit(path: Path, **metrics) -> None:
    record = json.loads(path.read_text())
    record["metrics"].update(metrics)
    path.write_text(json.dumps(record, indent=1, sort_keys=True))


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_run_is_named_moved_aside_and_rerun_by_the_ledger_and_the_sweep(lp_record, tmp_path, damage, capsys):
    """The record's digests (its own and its files') catch what a valid-looking record hides: plain
    `ledger` drops the run in one line and the next run of the grid trains it again, same numbers."""
    from reprolib.study.ledger import build_ledger
    from reprolib.sweep.runner import run_sweep
    from reprolib.transfer.run import run_transfer

    cfg, folder = lp_record
    runs = tmp_path / "artifacts" / "runs"
    runs.mkdir(parents=True)
    for file in folder.iterdir():
        (runs / file.name).write_bytes(file.read_bytes())
    (good,) = runs.glob("*.json")
    original = json.loads(good.read_text())
    sealed = set(original["digests"]["files"])   # the learned state, the scores and each OOD set's scores
    assert {f"{good.stem}.npz", f"{good.stem}.scores.npz"} < sealed
    assert all(name.startswith(f"{good.stem}.ood-") for name in sealed - {f"{good.stem}.npz", f"{good.stem}.scores.npz"})
    damage_it, reason = DAMAGES[damage]
    damage_it(runs, good.stem)
    assert len(build_ledger(tmp_path / "artifacts")) == 0
    line = capsys.readouterr().err.strip()
    assert len(line.splitlines()) == 1 and f"{good} is bad: {reason.replace('RID', good.stem)}" in line, line
    assert (runs / f"{good.stem}.bad.json").is_file() and not good.exists()
    summary = run_sweep([cfg.replace(results_path=str(runs))], verbose=False)   # the sweep reruns it
    assert summary.ok and summary.records[0]["metrics"] == original["metrics"]
    assert records.verified_record(good) == summary.records[0]
    assert run_transfer(cfg.replace(results_path=str(runs)))["created"] == summary.records[0]["created"]   # kept


def test_a_truncated_record_never_leaves_the_ledger_stale(tmp_path, capsys):
    """The ledger said ok for a run; its record is cut: the rebuilt ledger drops it instead of failing."""
    from reprolib.study.ledger import update_ledger
    from synthetic_study import write_synthetic_study

    write_synthetic_study(tmp_path, targets=("digits",), arms=("lp",), seeds=(1,))
    assert len(update_ledger(tmp_path)) == 10
    victim = sorted((tmp_path / "runs").glob("*.json"))[3]
    victim.write_text(victim.read_text()[:100])
    frame = update_ledger(tmp_path)
    assert len(frame) == 9 and victim.stem not in set(frame["id"])
    saved = (tmp_path / "ledger.csv").read_text()
    assert victim.stem not in saved and saved.count("\n") == 10       # header + 9 rows, written again
    assert "is bad: it is not valid JSON" in capsys.readouterr().err


def _level(directory: Path) -> dict:
    directory.mkdir(parents=True)
    M.save_tensors(directory / "model.pth", {"w": torch.ones(4, 4)})
    M.save_tensors(directory / "mask.pth", {"w": torch.ones(4, 4)})
    return M.save_report(directory, {"kind": "imp", "level": 1, "density": 1.0})


def test_a_ticket_level_with_a_missing_or_cut_file_is_not_complete(tmp_path, capsys):
    report = _level(tmp_path / "level_01")
    assert set(report["files"]) == {"model.pth", "mask.pth"} and M.is_complete(tmp_path / "level_01")
    (tmp_path / "level_01" / "mask.pth").unlink()
    assert not M.is_complete(tmp_path / "level_01")
    assert "level_01 is incomplete (mask.pth is missing); `tickets` remakes it" in capsys.readouterr().err
    _level(tmp_path / "level_02")
    model = tmp_path / "level_02" / "model.pth"
    model.write_bytes(model.read_bytes()[:50])
    assert not M.is_complete(tmp_path / "level_02") and "model.pth has 50 bytes" in capsys.readouterr().err
    old = tmp_path / "level_03"          # a report from before sizes were listed
    old.mkdir()
    M.save_tensors(old / "model.pth", {"w": torch.ones(2)})
    M.save_json(old / "sparsity.json", {"kind": "imp", "level": 3})
    assert not M.is_complete(old)
    (old / "sparsity.json").write_text("{")
    assert not M.is_complete(old)


def test_a_deleted_mask_of_an_imported_ticket_is_repaired_not_reported_existing(tmp_path, capsys):
    from reprolib.sparsity.load import build_network
    from reprolib.sparsity import imported

    net = build_network("small_resnet")
    with torch.no_grad():
        net.layer1[0].conv1.weight[:, :2] = 0
    file = tmp_path / "ticket.pth"
    torch.save(net.state_dict(), file)
    first = imported.import_ticket(file, "mine", tmp_path / "artifacts", "small_resnet")
    mask_file = Path(first["path"]) / "mask.pth"
    mask_file.unlink()
    again = imported.import_ticket(file, "mine", tmp_path / "artifacts", "small_resnet")
    assert again["status"] == "imported" and mask_file.is_file() and M.is_complete(Path(again["path"]))
    assert imported.import_ticket(file, "mine", tmp_path / "artifacts", "small_resnet")["status"] == "existing"


@pytest.mark.parametrize("spoil, expected", [
    (lambda state: {k: torch.zeros_like(v) if v.is_floating_point() and v.dim() > 1 else v for k, v in state.items()},
     r"keeps no weights \(density 0"),
    (lambda state: {**state, "fc.bias": torch.full_like(state["fc.bias"], math.nan)}, "'fc.bias' holds non-finite"),
    (lambda state: {**state, "bn1.running_var": torch.full_like(state["bn1.running_var"], math.inf)},
     "'bn1.running_var' holds non-finite"),
])
def test_a_ticket_without_kept_or_finite_weights_is_refused_at_import(tmp_path, spoil, expected):
    from reprolib.sparsity.load import build_network
    from reprolib.sparsity import imported

    file = tmp_path / "bad.pth"
    torch.save(spoil(build_network("small_resnet").state_dict()), file)
    with pytest.raises(ReprolibError, match=expected) as err:
        imported.import_ticket(file, "bad", tmp_path / "artifacts", "small_resnet")
    assert str(file) in str(err.value)
    assert not (tmp_path / "artifacts" / "tickets" / "imported" / "bad").exists()


def test_a_corrupt_feature_cache_file_is_rebuilt(tmp_path, capsys):
    from reprolib.transfer.feature_cache import FeatureStore

    calls = []
    compute = lambda: calls.append(1) or torch.arange(6.0).reshape(2, 3)   # noqa: E731
    FeatureStore(tmp_path).features("k", compute, "cpu")
    cache = tmp_path / "k.pt"
    cache.write_bytes(cache.read_bytes()[:40])
    fresh = FeatureStore(tmp_path)                                        # a new process: nothing in memory
    assert torch.equal(fresh.features("k", compute, "cpu"), torch.arange(6.0).reshape(2, 3)) and len(calls) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and f"feature cache {cache} is unreadable" in err and "rebuilding it" in err
    assert torch.equal(torch.load(cache, weights_only=True), torch.arange(6.0).reshape(2, 3))   # rewritten whole


def test_a_full_disk_is_one_line_and_leaves_no_orphan(tmp_path, monkeypatch):
    import numpy as np

    real_fdopen = os.fdopen
    room = {"bytes": 10_000_000}
    monkeypatch.setattr(records.os, "fdopen", lambda fd, mode="r", *a, **k: FullDisk(real_fdopen(fd, mode, *a, **k),
                                                                                        room["bytes"]))
    records.write_json_atomic(tmp_path / "old.json", {"kept": True})
    room["bytes"] = 64
    with pytest.raises(ReprolibError, match="No space left on device; nothing was left behind") as err:
        records.write_json_atomic(tmp_path / "old.json", {"x": "y" * 1000})
    assert len(str(err.value).splitlines()) == 1
    assert json.loads((tmp_path / "old.json").read_text()) == {"kept": True}
    # A run's state file fits, its record does not: neither stays.
    big = {"metrics": {"accuracy": 0.5}, "padding": "x" * 5000}
    arrays = {"w": np.zeros(10, np.float32)}
    room["bytes"] = 2000
    with pytest.raises(ReprolibError, match="No space left"):
        records.write_run_files(tmp_path / "runs", "abc", big, arrays)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["old.json", "runs"]


def test_a_full_disk_during_a_sweep_shows_its_first_cause_not_the_ledger_s(tmp_path, monkeypatch, capsys):
    """The runs cannot be written, nor their failure records: the sweep stops on that first error in one
    line; the ledger it then tries to rebuild fails too, silently, and leaves nothing behind."""
    import reprolib.sweep.runner as sweep
    from reprolib.cli import main
    from sweep_fakes import fake_run

    monkeypatch.setenv("REPROLIB_HOME", str(tmp_path))
    monkeypatch.setattr(sweep, "run_transfer", fake_run)
    real_fdopen = os.fdopen
    room = {"bytes": 200}   # each file takes 200 bytes: the lock fits, no record, traceback or ledger does
    monkeypatch.setattr(records.os, "fdopen", lambda fd, mode="r", *a, **k: FullDisk(real_fdopen(fd, mode, *a, **k),
                                                                                        room["bytes"]))
    assert main(["sweep", "--profile", "smoke", "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left on device; nothing was left behind" in err, err
    assert ".traceback.txt" in err and "ledger.csv" not in err
    runs = tmp_path / "artifacts" / "smoke" / "runs"
    assert not runs.exists() and not (runs.parent / "ledger.csv").exists(), sorted(tmp_path.rglob("*"))
    room["bytes"] = 0        # not even the lock fits: one line too, and no half-written lock
    assert main(["sweep", "--profile", "smoke", "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: cannot write the lock {runs / '.sweep.lock'}: No space left on device; free some space, " \
                  "or choose a folder you can write"
    assert not runs.exists()
