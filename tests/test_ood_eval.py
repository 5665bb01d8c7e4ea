"""OOD scoring of transfer runs: the right OOD images, and metrics that see separation."""

import torch

from reprolib.config import load_profile
from reprolib.data import info
from reprolib.images import to_network
from reprolib.protocols import get_protocol
from reprolib.transfer.ood_eval import NOISE_SEED, ood_images, ood_logits

MAX_PER_SET = get_protocol("smoke").ood_per_set


def test_ood_images_pool_the_other_embedded_sets_at_the_target_size():
    images = ood_images("digits", load_profile("smoke"), size=8, channels=1, per_set=MAX_PER_SET)
    assert set(images) == {"datasets", "noise"}
    # Fashion-MNIST and glyphs (never digits itself), MAX_PER_SET each, resized to 8 px.
    tensors = {group: x.gather(torch.arange(len(x))) for group, x in images.items()}
    assert tensors["datasets"].shape == (2 * MAX_PER_SET, 1, 8, 8)
    assert tensors["noise"].shape == (MAX_PER_SET, 1, 8, 8)
    for x in tensors.values():
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    again = ood_images("digits", load_profile("smoke"), size=8, channels=1, per_set=MAX_PER_SET)
    assert torch.equal(again["datasets"].gather(torch.arange(2 * MAX_PER_SET)), tensors["datasets"])
    # Gathered in any order, a minibatch is the same images as the whole set indexed.
    idx = torch.tensor([2 * MAX_PER_SET - 1, 0, MAX_PER_SET, 3])
    assert torch.equal(images["datasets"].gather(idx), tensors["datasets"][idx])


def test_partners_are_the_sets_scored_before_issue_9():
    # ood_images used the literal ("fashion_mnist", "digits", "glyphs") minus the target.
    for target in ("digits", "glyphs"):
        legacy = tuple(n for n in ("fashion_mnist", "digits", "glyphs") if n != target)
        assert info(target).ood_partners == legacy


def test_pooled_images_are_the_partners_through_to_network():
    from reprolib.data import get_dataset

    images = ood_images("glyphs", load_profile("smoke"), size=28, channels=1, per_set=MAX_PER_SET)
    first = get_dataset("fashion_mnist", "test")
    keep = torch.randperm(len(first), generator=torch.Generator().manual_seed(NOISE_SEED))[:MAX_PER_SET]
    expected, _ = first.subset(torch.sort(keep).values).tensors()
    pooled = images["datasets"].gather(torch.arange(len(images["datasets"])))
    assert torch.equal(pooled[:MAX_PER_SET], to_network(expected, 1, 28))
    # digits (8 px) are upsampled to the target's 28 px
    assert pooled.shape == (2 * MAX_PER_SET, 1, 28, 28)


def test_ood_metrics_keep_the_record_keys():
    """OOD logits per group (what a run saves) give the record's metrics.ood through the registry."""
    from reprolib.scores.registry import compute_metrics
    from reprolib.scores.saved import SavedScores

    id_logits = torch.zeros(50, 10)
    id_logits[:, 3] = 8.0
    flat = torch.randn(40, 10, generator=torch.Generator().manual_seed(0)) * 0.1
    logits = ood_logits(lambda x: flat[: len(x)], {"datasets": torch.zeros(40, 1, 8, 8),
                                                   "noise": torch.zeros(30, 1, 8, 8)})
    out = compute_metrics(SavedScores(id_logits, torch.full((50,), 3), logits), {})["ood"]
    assert set(out) == {"datasets", "noise"}
    for group in out.values():
        assert set(group) == {"msp_auroc", "msp_fpr95", "energy_auroc", "energy_fpr95"}
        assert group["msp_auroc"] == 1.0 and group["msp_fpr95"] == 0.0


def test_partners_are_fixed_by_the_profile_and_a_missing_one_is_one_line(tmp_path, monkeypatch):
    """A paper target's partners are the profile's other targets, whatever is on disk; a missing
    one fails the run in one line naming it and the command that fetches it."""
    import pytest

    from reprolib.errors import ReprolibError
    from reprolib.transfer.ood_eval import ood_partners

    monkeypatch.setenv("REPROLIB_HOME", str(tmp_path))   # an empty data root
    profile = load_profile("paper-dryrun")
    assert ood_partners("cifar10", profile) == ("oxfordpets",)
    assert ood_partners("digits", profile) == info("digits").ood_partners
    with pytest.raises(ReprolibError) as caught:
        ood_images("cifar10", profile, size=32, channels=3, per_set=5)
    message = str(caught.value)
    assert "\n" not in message and "OOD partner oxfordpets" in message
    assert "data --prepare --profile paper-dryrun" in message
