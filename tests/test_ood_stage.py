"""The OOD stage: a run's OOD logits are keyed by (run id, OOD set), computed from its saved learned
state and the network, so adding or removing a target or partner retrains nothing and scores
only the new (run, set) pairs; every registered method restores from its `<id>.npz` to the bit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from smoke_runs import profile_copy, smoke_with_dense_model

from reprolib.errors import ReprolibError
from reprolib.scores.ood_files import ood_path, read_ood, saved_scores, set_digest, stored_digest, write_ood
from reprolib.scores.registry import compute_metrics
from reprolib.scores.saved import load_scores, scores_path
from reprolib.transfer import registry as method_registry

pytestmark = pytest.mark.usefixtures("one_thread")


def _smoke_config(folder: Path, method: str):
    from reprolib.transfer.config import TransferConfig

    label_map = method_registry.get(method).arms[0].label_map   # the method's first arm
    return TransferConfig(profile="smoke", target="digits", method=method, label_map=label_map, n_shot=5, epochs=1,
                          device="cpu", results_path=str(folder), progress=False)


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory) -> Path:
    smoke_with_dense_model()
    return tmp_path_factory.mktemp("stage_runs")


@pytest.mark.parametrize("method", method_registry.names())
def test_a_restored_method_predicts_the_saved_test_logits_to_the_bit(method, runs_folder):
    """Every registered method: rebuilt on its network from `<id>.npz` alone (no training, no
    mapping pass), it predicts the test set exactly as the run did, and its OOD sets too."""
    from reprolib.transfer.inputs import predict
    from reprolib.transfer.ood_eval import ood_sets
    from reprolib.transfer.run import load_target, resolve, restore_method, run_transfer

    cfg = _smoke_config(runs_folder, method)
    record = run_transfer(cfg)
    method_now = restore_method(cfg)
    hashed, profile, protocol = resolve(cfg)
    test = load_target(cfg, profile, hashed["seed"], protocol).test
    logits = predict(method_now.forward, method_now.inputs(test), hashed["test_batch_size"])
    saved = load_scores(scores_path(runs_folder, record["id"]))
    assert logits.dtype == saved.test_logits.dtype == torch.float32
    assert torch.equal(logits, saved.test_logits), method
    noise = ood_sets(cfg.target, profile, protocol.ood_per_set)[-1]
    again = predict(method_now.forward, method_now.inputs(noise.images), hashed["test_batch_size"])
    assert torch.equal(again, read_ood(ood_path(runs_folder, record["id"], noise.name)))


def test_a_run_writes_one_file_per_set_and_its_record_names_them(runs_folder):
    """The in-process stage: `<id>.ood-<set>.npz` per partner and noise, each with its set's
    digest; the record's OOD metrics are the registry's on the partners concatenated in order."""
    from reprolib.transfer.ood_eval import ood_sets
    from reprolib.transfer.run import resolve, run_transfer

    cfg = _smoke_config(runs_folder, "vp")
    record = run_transfer(cfg)
    _, profile, protocol = resolve(cfg)
    sets = ood_sets("digits", profile, protocol.ood_per_set)
    assert record["ood_sets"] == {"datasets": [["fashion_mnist", set_digest(sets[0].description)],
                                               ["glyphs", set_digest(sets[1].description)]],
                                  "noise": [["noise", set_digest(sets[2].description)]]}
    files = sorted(p.name for p in runs_folder.glob(f"{record['id']}.ood-*.npz"))
    assert files == [f"{record['id']}.ood-{name}.npz" for name in ("fashion_mnist", "glyphs", "noise")]
    parts = [read_ood(ood_path(runs_folder, record["id"], s.name), set_digest(s.description)) for s in sets]
    assert [len(p) for p in parts] == [protocol.ood_per_set] * 3 and all(p.shape[1] == 10 for p in parts)
    scores = saved_scores(runs_folder, record)
    assert torch.equal(scores.ood_logits["datasets"], torch.cat(parts[:2]))
    assert compute_metrics(scores, record["config"])["ood"] == record["metrics"]["ood"]
    assert "ood_partners" not in record["config"] and "ood_per_set" not in record["config"]   # not in the id


def test_the_partner_sets_concatenated_are_the_pooled_set_of_before_to_the_bit(runs_folder):
    """Why the record's `datasets` group keeps its values: each image's logits depend on that image
    alone, so scoring the partners one by one and concatenating them gives, bit for bit, what
    scoring them as one pooled set (the earlier versions' way) gave."""
    from reprolib.transfer.inputs import predict
    from reprolib.transfer.ood_eval import PooledImages, ood_sets
    from reprolib.transfer.run import resolve, restore_method, run_transfer

    for method in ("lp", "smm"):
        cfg = _smoke_config(runs_folder, method)
        run_transfer(cfg)
        model = restore_method(cfg)
        hashed, profile, protocol = resolve(cfg)
        partners = [s for s in ood_sets(cfg.target, profile, protocol.ood_per_set) if s.group == "datasets"]
        pooled = PooledImages([s.images.parts[0] for s in partners], 1, 8)
        batch = hashed["test_batch_size"]
        assert len(pooled) > batch and protocol.ood_per_set % batch   # a pooled batch straddles two sets
        assert torch.equal(predict(model.forward, model.inputs(pooled), batch),
                           torch.cat([predict(model.forward, model.inputs(s.images), batch) for s in partners]))


def test_a_stale_cut_or_foreign_set_file_is_scored_again_and_read_as_one_line(runs_folder, tmp_path):
    from reprolib.transfer.run import complete_ood, run_transfer

    cfg = _smoke_config(runs_folder, "vp")
    record = run_transfer(cfg)
    glyphs = ood_path(runs_folder, record["id"], "glyphs")
    before = glyphs.read_bytes()
    glyphs.write_bytes(before[:100])                                         # cut
    assert stored_digest(glyphs) is None
    with pytest.raises(ReprolibError, match="cannot be read") as caught:
        read_ood(glyphs)
    assert str(glyphs) in str(caught.value) and "\n" not in str(caught.value)
    items = complete_ood(cfg, record)
    assert items.scored == ["glyphs"] and not items.rewritten and glyphs.read_bytes() == before
    write_ood(glyphs, torch.zeros(3, 10), {"set": "glyphs", "count": 3})   # another description: stale
    with pytest.raises(ReprolibError, match="scored for another set"):
        read_ood(glyphs, record["ood_sets"]["datasets"][1][1])
    assert complete_ood(cfg, record).scored == ["glyphs"] and glyphs.read_bytes() == before
    assert complete_ood(cfg, record).scored == []                           # complete: nothing to do


def _sweep(home: Path, targets: list[str]):
    from reprolib.config import load_profile
    from reprolib.sweep.runner import build_grid, run_sweep

    # a small paper-dryrun study (LP and VP-ILM, dense, full data, one seed) whose OOD partners are
    # its other targets (the paper profile's rule)
    path = profile_copy("paper-dryrun", home, "stage_grid", targets=targets, methods=["lp", "vp/ilm"], levels=[0],
                        n_shots=[-1], tickets={})
    profile = load_profile(str(path))
    summary = run_sweep(build_grid(profile), verbose=False, workers=1)   # in this process (the patch below holds)
    assert summary.ok, summary.report()
    return profile, summary.records


def _files(runs: Path, pattern: str) -> dict[str, int]:
    """{name: mtime} of the files matching `pattern` ("learned": the runs' `<id>.npz`)."""
    if pattern == "learned":
        return {p.name: p.stat().st_mtime_ns for p in runs.glob("*.npz") if p.name.count(".") == 1}
    return {p.name: p.stat().st_mtime_ns for p in runs.glob(pattern)}


def test_adding_a_target_to_a_finished_grid_trains_nothing_and_scores_only_the_new_pairs(tmp_path, monkeypatch):
    """The paper grid's partners are its other targets. Adding eurosat to a finished cifar10 +
    oxfordpets grid keeps every run id, trains only eurosat's runs, and scores each finished run
    on eurosat alone; removing it again scores nothing and trains nothing."""
    from reprolib.dryrun import write_dryrun_root

    monkeypatch.setenv("REPROLIB_HOME", str(tmp_path))
    # a user's copy of paper-dryrun that keeps its trust in the synthetic root (refused outside tests: test_security)
    monkeypatch.setattr("reprolib.config.BUILT_IN_ONLY", ())
    write_dryrun_root(tmp_path / "data" / "dryrun", datasets=["cifar10", "oxfordpets", "eurosat"], archs=["resnet18"],
                      n_per_class_train=2, n_per_class_test=1)
    profile, first = _sweep(tmp_path, ["cifar10", "oxfordpets"])
    runs = profile.path("artifacts") / "runs"
    learned, ood_before = _files(runs, "learned"), _files(runs, "*.ood-*.npz")
    assert len(first) == 4 and len(learned) == 4 and len(ood_before) == 4 * 2   # each: its partner, noise

    _, second = _sweep(tmp_path, ["cifar10", "oxfordpets", "eurosat"])
    assert [r["id"] for r in second[:4]] == [r["id"] for r in first]          # same ids: nothing retrained
    learned_now, ood_now = _files(runs, "learned"), _files(runs, "*.ood-*.npz")
    assert {k: learned_now[k] for k in learned} == learned and len(learned_now) == 6   # 2 eurosat runs trained
    assert {k: ood_now[k] for k in ood_before} == ood_before                   # no finished pair scored again
    new_pairs = sorted(set(ood_now) - set(ood_before))
    old_ids = [r["id"] for r in first]
    assert [p for p in new_pairs if p.split(".")[0] in old_ids] == sorted(f"{i}.ood-eurosat.npz" for i in old_ids)
    assert len(new_pairs) == 4 + 2 * 3                                         # 4 new pairs + eurosat's own runs
    for old, new in zip(first, second[:4]):                                    # the pooled group now holds eurosat
        assert [name for name, _ in new["ood_sets"]["datasets"]] == [name for name, _ in old["ood_sets"]["datasets"]] \
            + ["eurosat"]
        assert new["metrics"]["ood"]["noise"] == old["metrics"]["ood"]["noise"]
        assert compute_metrics(saved_scores(runs, new), new["config"])["ood"] == new["metrics"]["ood"]
        assert {k: v for k, v in new["metrics"].items() if k != "ood"} == \
            {k: v for k, v in old["metrics"].items() if k != "ood"}

    _, third = _sweep(tmp_path, ["cifar10"])                                   # a removed target: nothing to score
    assert _files(runs, "*.ood-*.npz") == ood_now and _files(runs, "learned") == learned_now
    assert set(third[0]["metrics"]["ood"]) == {"noise"}
    assert third[0]["ood_sets"] == {"noise": first[0]["ood_sets"]["noise"]}
    on_disk = json.loads((runs / f"{third[0]['id']}.json").read_text())
    assert on_disk["ood_sets"] == third[0]["ood_sets"]


def test_a_run_missing_its_learned_state_cannot_be_scored_and_says_what_to_run(runs_folder, tmp_path):
    from reprolib.transfer.run import complete_ood, run_transfer

    folder = tmp_path / "runs"
    cfg = _smoke_config(runs_folder, "vp")
    record = run_transfer(cfg)
    shutil.copytree(runs_folder, folder, ignore=lambda d, names: [n for n in names if not n.startswith(record["id"])])
    (folder / f"{record['id']}.npz").unlink()
    ood_path(folder, record["id"], "noise").unlink()
    cfg = _smoke_config(folder, "vp")
    with pytest.raises(ReprolibError, match="learned state .* cannot be read") as caught:
        complete_ood(cfg, record)
    assert "\n" not in str(caught.value) and "sweep" in str(caught.value)
