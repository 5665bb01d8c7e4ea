"""few_shot_indices: n per class, seeded, -1 = all, one-line errors for bad n."""

import numpy as np
import pytest
import torch

from reprolib.data import capped_warning, effective_shots, few_shot_indices
from reprolib.errors import ReprolibError

# Unbalanced labels: class 0 has 7 images, class 1 has 4, class 2 has 9 (interleaved).
LABELS = torch.tensor([0, 1, 2, 2, 0, 1, 2, 0, 2, 2, 0, 1, 2, 0, 2, 0, 1, 2, 0, 2])


def test_counts_per_class_and_membership():
    for n in (1, 2, 4):
        idx = few_shot_indices(LABELS, n, seed=1)
        assert idx.dtype == torch.long
        assert torch.equal(torch.bincount(LABELS[idx], minlength=3), torch.tensor([n, n, n]))
        assert len(set(idx.tolist())) == len(idx)                  # no duplicates
        assert torch.equal(idx, torch.sort(idx).values)           # documented: sorted ascending


def test_seed_determinism_and_seeds_differ():
    a = few_shot_indices(LABELS, 2, seed=3)
    assert torch.equal(a, few_shot_indices(LABELS, 2, seed=3))
    draws = {tuple(few_shot_indices(LABELS, 2, seed=s).tolist()) for s in range(1, 9)}
    assert len(draws) > 1


def test_matches_the_documented_per_class_shuffle():
    # Classes in sorted order, each shuffled by one generator seeded with `seed`.
    g = torch.Generator().manual_seed(5)
    expected = []
    for cls in (0, 1, 2):
        members = torch.nonzero(LABELS == cls).flatten()
        expected += members[torch.randperm(len(members), generator=g)[:3]].tolist()
    assert few_shot_indices(LABELS, 3, seed=5).tolist() == sorted(expected)


def test_minus_one_means_all():
    assert torch.equal(few_shot_indices(LABELS, -1, seed=1), torch.arange(len(LABELS)))


def test_list_and_ndarray_labels_agree_with_tensor():
    ref = few_shot_indices(LABELS, 3, seed=2)
    assert torch.equal(few_shot_indices(LABELS.tolist(), 3, seed=2), ref)
    assert torch.equal(few_shot_indices(LABELS.numpy().astype(np.int32), 3, seed=2), ref)
    # Non-contiguous class ids work too.
    sparse = (LABELS * 10 + 7).numpy()
    assert torch.equal(few_shot_indices(sparse, 3, seed=2), ref)


def test_max_n_is_the_smallest_class_count():
    idx = few_shot_indices(LABELS, 4, seed=1)
    assert set(idx[LABELS[idx] == 1].tolist()) == set(torch.nonzero(LABELS == 1).flatten().tolist())


@pytest.mark.parametrize("n_shot", [0, -2, -100])
def test_bad_counts_are_one_line_errors(n_shot):
    with pytest.raises(ReprolibError) as err:
        few_shot_indices(LABELS, n_shot, seed=1)
    message = str(err.value)
    assert "\n" not in message and f"n_shot={n_shot}" in message and "valid: -1 (all) or an int >= 1" in message


def test_n_shot_above_a_class_size_keeps_all_of_that_class():
    """Issue 10 fix 4 (raised before): a class of 10 images and n_shot 50 keeps its 10 (RLT's
    behaviour), the others get 50, and the capped class is recorded."""
    labels = torch.cat([torch.zeros(10, dtype=torch.long), torch.ones(80, dtype=torch.long),
                        torch.full((60,), 2, dtype=torch.long)])
    idx = few_shot_indices(labels, 50, seed=3)
    assert torch.bincount(labels[idx], minlength=3).tolist() == [10, 50, 50]
    assert set(torch.nonzero(labels == 0).flatten().tolist()) <= set(idx.tolist())
    # The uncapped classes draw exactly what they would have drawn (same generator order).
    g = torch.Generator().manual_seed(3)
    expected = []
    for cls in (0, 1, 2):
        members = torch.nonzero(labels == cls).flatten()
        expected += members[torch.randperm(len(members), generator=g)[:50]].tolist()
    assert idx.tolist() == sorted(expected)
    summary = effective_shots(labels, 50, class_names=["rose", "tulip", "daisy"])
    assert summary == {"n_shot": 50, "min": 10, "max": 50, "capped": ["rose"]}
    assert effective_shots(labels, 5) == {"n_shot": 5, "min": 5, "max": 5, "capped": []}
    assert effective_shots(labels, -1) is None
    line = capped_warning(summary, "flowers102")
    assert line == ("warning: flowers102 n_shot=50: 1 classes have fewer images and keep all of them (rose); "
                    "effective shots 10..50")
    assert capped_warning(effective_shots(labels, 5), "flowers102") is None


@pytest.mark.parametrize("n_shot", [True, 2.0, "5", None])
def test_non_int_counts_are_errors(n_shot):
    with pytest.raises(ReprolibError, match="n_shot must be int"):
        few_shot_indices(LABELS, n_shot, seed=1)


def test_bad_labels_and_seed():
    with pytest.raises(ReprolibError, match="seed must be int"):
        few_shot_indices(LABELS, 1, seed=1.5)
    with pytest.raises(ReprolibError, match="integers"):
        few_shot_indices([0.0, 1.0], 1, seed=1)
    with pytest.raises(ReprolibError, match="empty"):
        few_shot_indices([], 1, seed=1)
    with pytest.raises(ReprolibError, match="1-D"):
        few_shot_indices(torch.zeros(2, 2, dtype=torch.long), 1, seed=1)
