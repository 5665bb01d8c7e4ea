"""Saved scores: every run keeps the logits its metrics were computed from (test logits in
`<id>.scores.npz`, OOD logits in the OOD stage's `<id>.ood-<set>.npz`), and they give the
record's metrics back to the last bit (so a metric added later can be filled in without training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from smoke_runs import one_smoke_run

from reprolib.errors import ReprolibError
from reprolib.scores.ood_files import saved_scores
from reprolib.scores.saved import SavedScores, load_scores, scores_path

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def vp_run(tmp_path_factory):
    """(record, runs folder) of one real smoke VP run (1 epoch, 5-shot)."""
    folder = tmp_path_factory.mktemp("scores")
    _, record = one_smoke_run(folder, "vp", 5)
    return record, folder


def test_a_run_saves_its_test_and_ood_logits_beside_its_record(vp_run):
    record, folder = vp_run
    assert load_scores(scores_path(folder, record["id"])).ood_logits == {}   # OOD: the stage's own files
    scores = saved_scores(folder, record)
    assert scores.test_logits.shape == (record["config"]["n_test"], record["config"]["num_classes"])
    assert scores.test_labels.dtype == torch.int64 and len(scores.test_labels) == record["config"]["n_test"]
    assert set(scores.ood_logits) == set(record["metrics"]["ood"])   # one array per scored OOD group
    accuracy = float((scores.test_logits.argmax(1) == scores.test_labels).double().mean())
    assert accuracy == record["metrics"]["accuracy"]


def test_saved_scores_give_the_records_metrics_exactly(vp_run):
    from reprolib.scores.registry import compute_metrics

    record, folder = vp_run
    again = compute_metrics(saved_scores(folder, record), record["config"])
    for name in ("accuracy", "ece", "mce", "nll", "brier", "legacy_rlt_ece"):
        assert again[name] == record["metrics"][name], name
    assert again["ood"] == record["metrics"]["ood"]


def test_saved_scores_round_trip_and_bad_files_are_one_line(tmp_path):
    scores = SavedScores(torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2]), {"noise": torch.randn(4, 3)})
    path = tmp_path / "x.scores.npz"
    np.savez_compressed(path, **scores.arrays())
    back = load_scores(path)
    assert torch.equal(back.test_logits, scores.test_logits) and torch.equal(back.ood_logits["noise"],
                                                                            scores.ood_logits["noise"])
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ReprolibError, match="cannot be read") as err:
        load_scores(path)
    assert "\n" not in str(err.value)
    with pytest.raises(ReprolibError, match="no saved scores"):
        load_scores(tmp_path / "missing.scores.npz")
    np.savez_compressed(path, test_logits=np.zeros((3, 2), np.float32), test_labels=np.zeros(4, np.int64))
    with pytest.raises(ReprolibError, match="malformed"):
        load_scores(path)
