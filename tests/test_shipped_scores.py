"""Shipped scores: where the runs are, `ledger` packs them into `<artifacts>/scores.npz`; in a clone
(a home holding only the shipped files: ledger, tickets table, archive) `ledger --recompute-metrics`
fills a newly registered metric into the ledger for every run; a cut or foreign archive, or a
metric that cannot be computed from what was saved, is one line, exit 2, nothing rewritten."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from smoke_runs import profile_copy, smoke_with_dense_model

from reprolib.cli import main
from reprolib.scores import archive, registry
from reprolib.scores.ood_files import saved_scores
from reprolib.scores.registry import Metric, compute_metrics

pytestmark = pytest.mark.usefixtures("one_thread")
SHIPPED = ("ledger.csv", "tickets.csv", archive.ARCHIVE_NAME)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """(home, profile YAML, artifacts) of a small smoke study (LP and VP-ILM, two seeds, 5-shot)
    whose profile ships float32 scores; swept, then `ledger` packed it."""
    from reprolib.config import load_profile
    from reprolib.sweep.runner import build_grid, run_sweep

    smoke = smoke_with_dense_model()
    home = tmp_path_factory.mktemp("ship_home")
    yaml = profile_copy("smoke", home, "ship_smoke", methods=["lp", "vp/ilm"], levels=[0], baselines=[],
                        n_shots=[5], seeds=[1, 2], ship_scores="float32")
    profile = load_profile(str(yaml))
    artifacts = profile.path("artifacts")
    tickets = artifacts / "tickets"
    shutil.copytree(smoke.path("artifacts") / "tickets", tickets)          # the smoke dense model
    assert run_sweep(build_grid(profile), verbose=False).ok
    assert main(["ledger", "--profile", str(yaml)]) == 0
    assert archive.archive_path(artifacts).is_file()
    return home, yaml, artifacts


@pytest.fixture
def clone(study, tmp_path, monkeypatch):
    """A fresh-clone home: only the study's shipped files and its profile; (profile YAML, artifacts)."""
    _, yaml, artifacts = study
    monkeypatch.setenv("REPROLIB_HOME", str(tmp_path))
    shipped = tmp_path / "artifacts" / "ship_smoke"
    shipped.mkdir(parents=True)
    for name in SHIPPED:
        shutil.copy(artifacts / name, shipped / name)
    copy = tmp_path / yaml.name
    shutil.copy(yaml, copy)
    return copy, shipped


@pytest.fixture
def throwaway():
    """Two metrics registered for one test (a scalar and an OOD one), removed after it."""
    added = [registry.register(Metric("top2_accuracy", _top2, "higher", "top-2 accuracy")),
             registry.register(Metric("maxlogit_auroc", _maxlogit_auroc, "higher", "OOD AUROC (max logit)",
                                      kind="ood"))]
    yield added
    for metric in added:
        registry._REGISTRY.pop(metric.name)


def _top2(inputs) -> float:
    top2 = inputs.probs.topk(2, dim=1).indices
    return float((top2 == inputs.labels[:, None]).any(dim=1).double().mean())


def _maxlogit_auroc(inputs, group: str) -> float:
    from reprolib.scores.metrics import ood_auroc

    return ood_auroc(inputs.scores.test_logits.double().max(dim=1).values,
                     inputs.scores.ood_logits[group].double().max(dim=1).values)


def test_a_clone_backfills_a_new_metric_for_every_shipped_run(study, clone, throwaway, capsys):
    _, _, artifacts = study
    yaml, shipped = clone
    before = pd.read_csv(shipped / "ledger.csv")
    assert not (shipped / "runs").exists() and len(before) == 4
    assert main(["ledger", "--recompute-metrics", "--profile", str(yaml)]) == 0
    assert "filled in ood_datasets_maxlogit_auroc, ood_noise_maxlogit_auroc, top2_accuracy" in capsys.readouterr().out
    after = pd.read_csv(shipped / "ledger.csv")
    assert after[before.columns].equals(before)                              # nothing held was changed
    runs = artifacts / "runs"
    for _, row in after.iterrows():                                           # every run filled, exactly
        record = json.loads((runs / f"{row['id']}.json").read_text())
        expected = compute_metrics(saved_scores(runs, record), record["config"])
        assert row["top2_accuracy"] == expected["top2_accuracy"]
        for group in ("datasets", "noise"):
            assert row[f"ood_{group}_maxlogit_auroc"] == expected["ood"][group]["maxlogit_auroc"]
    assert list(after.columns).index("top2_accuracy") < list(after.columns).index("ood_datasets_energy_auroc")
    assert main(["ledger", "--recompute-metrics", "--profile", str(yaml)]) == 0   # again: nothing new
    assert "filled in nothing new" in capsys.readouterr().out


def _refused(yaml: Path, shipped: Path, capsys, *words: str) -> str:
    before = {name: (shipped / name).read_bytes() for name in SHIPPED}
    assert main(["ledger", "--recompute-metrics", "--profile", str(yaml)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err
    assert {name: (shipped / name).read_bytes() for name in SHIPPED} == before   # nothing rewritten
    return err


def test_a_cut_or_foreign_archive_is_one_line_and_nothing_is_rewritten(clone, throwaway, capsys):
    yaml, shipped = clone
    path = shipped / archive.ARCHIVE_NAME
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    _refused(yaml, shipped, capsys, str(path), "is cut or not a scores archive", "git checkout --")
    np.savez(path, test_logits=np.zeros((3, 2), np.float32))                 # another npz
    _refused(yaml, shipped, capsys, str(path), "is cut or not a scores archive")
    path.write_bytes(whole)
    with np.load(path) as npz:
        fields = {name: npz[name] for name in npz.files}
    fields["logits"] = fields["logits"][:-50]                                 # a cut stream in a sound zip
    np.savez(path, **fields)
    _refused(yaml, shipped, capsys, str(path), "logits stream is cut")


def test_a_metric_that_cannot_be_computed_from_what_was_saved_is_one_line(clone, capsys):
    yaml, shipped = clone
    metric = registry.register(Metric("needs_more", lambda i: i.config["calibration_split"], "lower", "needs more"))
    try:
        err = _refused(yaml, shipped, capsys, "cannot be computed", str(shipped / archive.ARCHIVE_NAME), "KeyError")
        assert "python -m reprolib sweep" in err
    finally:
        registry._REGISTRY.pop(metric.name)


def test_a_ledger_run_the_archive_lacks_is_one_line(clone, throwaway, capsys):
    yaml, shipped = clone
    ledger = pd.read_csv(shipped / "ledger.csv")
    ledger.loc[0, "id"] = "0123456789abcdef"
    ledger.to_csv(shipped / "ledger.csv", index=False)
    _refused(yaml, shipped, capsys, "lacks 1 run(s) of the ledger", "0123456789abcdef")


def test_the_explorer_s_runs_ship_their_learned_prompt(study):
    """The lowest seed of each cell ships its prompt picture (float16) and label map; other runs and
    LP ship none; the reader gives {} for them."""
    _, _, artifacts = study
    ledger = pd.read_csv(artifacts / "ledger.csv")
    for _, row in ledger.iterrows():
        learned = archive.learned_arrays(artifacts, row["id"])
        with np.load(artifacts / "runs" / f"{row['id']}.npz") as npz:
            saved = {k: npz[k] for k in npz.files}
        if row["arm"] == "vp/ilm" and row["seed"] == 1:
            assert set(learned) == {"prompt.theta", "label_map"}
            assert learned["prompt.theta"].dtype == np.float32   # from its float16 copy
            assert np.array_equal(learned["prompt.theta"], saved["prompt.theta"].astype(np.float16).astype(np.float32))
            assert np.array_equal(learned["label_map"], saved["label_map"])
        else:
            assert learned == {}, (row["arm"], row["seed"])


def test_the_explorer_draws_a_shipped_prompt_in_a_clone(study, clone):
    """In a clone (no runs/ folder) the explorer's one-run panel reads the learned prompt and label
    map from the archive: the shipped seed's state is there, another seed's is "not shipped"."""
    from reprolib.plots.explorer_run import learned_state

    _, artifacts = clone
    assert not (artifacts / "runs").exists()
    ledger = pd.read_csv(artifacts / "ledger.csv")
    vp = ledger[ledger["arm"] == "vp/ilm"].set_index("seed")["id"]
    shipped, other = learned_state(artifacts, vp[1]), learned_state(artifacts, vp[2])
    with np.load(study[2] / "runs" / f"{vp[1]}.npz") as npz:
        assert np.array_equal(shipped["label_map"], npz["label_map"])
        assert np.allclose(shipped["prompt.theta"], npz["prompt.theta"], atol=1e-3 * np.abs(npz["prompt.theta"]).max())
    assert other is None


@pytest.mark.parametrize("codec", archive.CODECS)
def test_each_codec_keeps_the_logits_to_its_precision(study, tmp_path, codec):
    """float32 exactly, float16 as float16 rounds, q<b> within half a step 2^-b; labels and every
    run's record exactly; the test labels are stored once (one target)."""
    _, _, artifacts = study
    runs = artifacts / "runs"
    records = [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))]
    shutil.copytree(runs, tmp_path / "runs")
    archive.pack(tmp_path, [archive.Folder("runs", records)], codec, "ship_smoke")
    packed = archive.read(archive.archive_path(tmp_path))
    assert [r["id"] for r in packed.records()] == [r["id"] for r in records]
    labels = {run["arrays"]["test_labels"]["offset"] for run in packed.manifest["runs"]}
    assert len(labels) == 1
    for record in records:
        exact, back = saved_scores(runs, record), packed.scores(record["id"])
        assert torch.equal(back.test_labels, exact.test_labels) and set(back.ood_logits) == set(exact.ood_logits)
        for a, b in [(exact.test_logits, back.test_logits)] + [(exact.ood_logits[g], back.ood_logits[g])
                                                                for g in exact.ood_logits]:
            assert b.dtype == torch.float32 and b.shape == a.shape
            if codec == "float32":
                assert torch.equal(a, b)
            elif codec == "float16":
                assert torch.equal(a.half().float(), b)
            else:
                assert float((a - b).abs().max()) <= 2.0 ** -(int(codec[1:]) + 1)


def test_another_study_s_saved_scores_are_packed_by_name(study, tmp_path):
    """The Reprogrammer's runs (reprogrammer/runs/<id>.json + <id>.scores.npz, arrays of its own names)
    are packed beside the transfer runs and read back by name."""
    folder = tmp_path / "reprogrammer" / "runs"
    folder.mkdir(parents=True)
    arrays = {"id": np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32),
              "labels": np.arange(7) % 3, "ood/noise": np.ones((4, 3), np.float32)}
    np.savez(folder / "r1.scores.npz", **arrays)
    (folder / "r1.json").write_text('{"id": "r1", "config": {"method": "reprogrammer"}, "metrics": {}}')
    from reprolib.study.shipped_scores import pack_study

    pack_study(tmp_path, "float32", "x", pd.DataFrame(columns=["id", "seed"] + ["target", "arm", "ticket_kind",
                                                                               "level", "n_shot"]), [])
    packed = archive.read(archive.archive_path(tmp_path))
    back = packed.arrays("r1", folder="reprogrammer/runs")
    assert set(back) == set(arrays) and all(np.array_equal(back[k], arrays[k]) for k in arrays)
    assert packed.records("reprogrammer/runs")[0]["config"] == {"method": "reprogrammer"}


def test_ledger_packs_again_only_when_the_runs_changed(study):
    _, yaml, artifacts = study
    path = archive.archive_path(artifacts)
    before = path.stat().st_mtime_ns
    assert main(["ledger", "--profile", str(yaml)]) == 0
    assert path.stat().st_mtime_ns == before                                  # current: left as it is
    record = next((artifacts / "runs").glob("*.json"))
    record.touch()
    assert main(["ledger", "--profile", str(yaml)]) == 0
    assert path.stat().st_mtime_ns > before and archive.read(path).codec == "float32"
