"""OOD sets of transfer runs: the right OOD images, described by what makes them, and metrics that see separation."""

import torch

from reprolib.config import load_profile
from reprolib.data import info
from reprolib.images import to_network
from reprolib.protocols import get_protocol
from reprolib.transfer.ood_eval import NOISE_SEED, _ood_sets, ood_sets
from reprolib.transfer.ood_stage import group_logits

MAX_PER_SET = get_protocol("smoke").ood_per_set


def _all(images) -> torch.Tensor:
    return images.gather(torch.arange(len(images)))


def test_ood_sets_are_the_other_embedded_sets_then_noise_at_the_target_size():
    sets = ood_sets("digits", load_profile("smoke"), MAX_PER_SET)   # digits: 8 px, one channel
    assert [(s.name, s.group) for s in sets] == [("fashion_mnist", "datasets"), ("glyphs", "datasets"),
                                                 ("noise", "noise")]
    # Fashion-MNIST and glyphs (never digits itself), MAX_PER_SET each, resized to 8 px.
    tensors = {s.name: _all(s.images) for s in sets}
    assert all(x.shape == (MAX_PER_SET, 1, 8, 8) for x in tensors.values())
    for x in tensors.values():
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    _ood_sets.cache_clear()   # drawn again from the data, not the worker's cache
    again = ood_sets("digits", load_profile("smoke"), MAX_PER_SET)
    assert all(torch.equal(_all(s.images), tensors[s.name]) for s in again)
    # Gathered in any order, a minibatch is the same images as the whole set indexed.
    idx = torch.tensor([MAX_PER_SET - 1, 0, 7, 3])
    assert torch.equal(sets[1].images.gather(idx), tensors["glyphs"][idx])


def test_a_set_s_description_names_its_images_count_and_size():
    """What the stage's file is keyed by: which images (their fingerprint), how many, at what size."""
    smoke = load_profile("smoke")
    digits, glyphs = ood_sets("digits", smoke, MAX_PER_SET), ood_sets("glyphs", smoke, MAX_PER_SET)
    fashion = digits[0].description
    assert (fashion["set"], fashion["split"], fashion["count"], fashion["seed"]) == \
        ("fashion_mnist", "test", MAX_PER_SET, NOISE_SEED)
    assert (fashion["size"], fashion["channels"]) == (8, 1) and glyphs[0].description["size"] == 28
    assert fashion["images"] == glyphs[0].description["images"]   # the same images, at another size
    assert ood_sets("digits", smoke, 5)[0].description["images"] != fashion["images"]
    assert digits[-1].description == {"set": "noise", "kind": "uniform", "count": MAX_PER_SET, "seed": NOISE_SEED,
                                      "size": 8, "channels": 1}


def test_partners_are_the_sets_scored_before_issue_9():
    # ood_images used the literal ("fashion_mnist", "digits", "glyphs") minus the target.
    for target in ("digits", "glyphs"):
        legacy = tuple(n for n in ("fashion_mnist", "digits", "glyphs") if n != target)
        assert info(target).ood_partners == legacy


def test_pooled_images_are_the_partners_through_to_network():
    from reprolib.data import get_dataset

    sets = ood_sets("glyphs", load_profile("smoke"), MAX_PER_SET)
    first = get_dataset("fashion_mnist", "test")
    keep = torch.randperm(len(first), generator=torch.Generator().manual_seed(NOISE_SEED))[:MAX_PER_SET]
    expected, _ = first.subset(torch.sort(keep).values).tensors()
    assert torch.equal(_all(sets[0].images), to_network(expected, 1, 28))
    # digits (8 px) are upsampled to the target's 28 px
    assert _all(sets[1].images).shape == (MAX_PER_SET, 1, 28, 28)


def test_ood_metrics_keep_the_record_keys():
    """OOD logits per set, grouped (partners pooled in order), give the record's metrics.ood through the registry."""
    from reprolib.scores.registry import compute_metrics
    from reprolib.scores.saved import SavedScores

    id_logits = torch.zeros(50, 10)
    id_logits[:, 3] = 8.0
    flat = torch.randn(70, 10, generator=torch.Generator().manual_seed(0)) * 0.1
    sets = ood_sets("digits", load_profile("smoke"), MAX_PER_SET)
    logits = group_logits(sets, {"fashion_mnist": flat[:20], "glyphs": flat[20:40], "noise": flat[40:]})
    assert torch.equal(logits["datasets"], flat[:40]) and torch.equal(logits["noise"], flat[40:])
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
        ood_sets("cifar10", profile, 5)
    message = str(caught.value)
    assert "\n" not in message and "OOD partner oxfordpets" in message
    assert "data --prepare --profile paper-dryrun" in message
