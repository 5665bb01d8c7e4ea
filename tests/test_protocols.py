"""Protocol presets carry the papers' numbers; unknown names and fields are one-line errors."""

import pytest

from reprolib.data import info as data_info
from reprolib.data import names as data_names
from reprolib.errors import ReprolibError
from reprolib.protocols import get_protocol, names


def test_rlt_preset_is_the_papers():
    p = get_protocol("rlt")
    assert (p.epochs, p.prompt_lr, p.lp_lr, p.batch_size) == (100, 0.01, 0.01, 128)
    assert p.milestone_epochs(p.epochs) == [50, 72] and p.gamma == 0.1 and not p.augment
    # Issue 10 fix 3: RLT feeds one --batch_size (128) to every loader, DTD and Pets included.
    assert {n: p.batch_size_for(n) for n in data_names(kind="paper")} == dict.fromkeys(data_names(kind="paper"), 128)
    with pytest.raises(ReprolibError, match="unknown dataset 'imagenet'"):
        p.batch_size_for("imagenet")


def test_ilm_and_smm_presets():
    ilm, smm = get_protocol("ilm"), get_protocol("smm")
    assert (ilm.epochs, ilm.lp_lr, ilm.prompt_lr) == (200, 0.1, 0.01)
    assert ilm.milestone_epochs(200) == [100, 144]
    assert (smm.epochs, smm.batch_size, smm.prompt_lr, smm.generator_lr, smm.generator_lr_vit) == (200, 256, 0.01, 0.01, 0.001)
    assert smm.milestone_epochs(200) == [100, 144] and smm.augment
    # ILM keeps its CoOp loaders' 64 on DTD and Pets; SMM uses 256 everywhere (issue 10 fix 3).
    assert [n for n in data_names() if ilm.batch_size_for(n) == 64] == ["dtd", "oxfordpets"]
    assert ilm.batch_size_for("cifar10") == 128
    assert smm.batch_size_for("dtd") == smm.batch_size_for("oxfordpets") == smm.batch_size_for("svhn") == 256


def test_legacy_ece_batch_is_rlts_test_loader_batch():
    """Issue 10 fix 2: 128, and 64 for VP on OxfordPets, in every preset (data, not name checks)."""
    for name in names():
        p = get_protocol(name)
        assert p.legacy_batch_for("vp", "oxfordpets") == 64
        assert p.legacy_batch_for("lp", "oxfordpets") == p.legacy_batch_for("smm", "oxfordpets") == 128
        assert p.legacy_batch_for("vp", "cifar10") == p.legacy_batch_for("vp", "digits") == 128
    d = get_protocol("embedded").to_dict()
    assert d["legacy_ece_batch"] == 128 and d["legacy_ece_exceptions"] == [["vp", "oxfordpets", 64]]
    assert get_protocol("rlt", legacy_ece_batch=256).legacy_batch_for("lp", "dtd") == 256


def test_smm_flips_every_dataset_and_the_safe_choice_stays_named():
    """Issue 10 fix 7: `smm` mirrors SVHN and GTSRB as the public code; embedded/smoke stay safe."""
    smm = get_protocol("smm")
    assert smm.flip == "always"
    assert smm.flips(data_info("svhn")) and smm.flips(data_info("gtsrb")) and smm.flips(data_info("digits"))
    for name in ("embedded", "smoke", "rlt", "ilm"):
        p = get_protocol(name)
        assert p.flip == "mirror_safe"
        assert not p.flips(data_info("svhn")) and not p.flips(data_info("digits")) and p.flips(data_info("gtsrb"))
    with pytest.raises(ReprolibError, match="unknown protocol flip 'never'; valid choices: always, mirror_safe"):
        get_protocol("smm", flip="never")


def test_embedded_and_smoke_are_short():
    assert get_protocol("smoke").epochs <= 2 < get_protocol("embedded").epochs <= 20


def test_to_dict_round_trips_every_field():
    d = get_protocol("rlt").to_dict()
    assert d["name"] == "rlt" and d["milestones"] == [0.5, 0.72] and d["epochs"] == 100


def test_overrides_and_errors():
    assert get_protocol("rlt", epochs=10).milestone_epochs(10) == [5, 7]
    assert get_protocol("rlt").epochs == 100   # the preset itself is unchanged
    assert names() == ["rlt", "ilm", "smm", "embedded", "smoke", "dryrun", "imagenet_lite", "smoke_lite"]
    with pytest.raises(ReprolibError, match="unknown protocol 'fast'; valid choices: rlt, ilm, smm, embedded, smoke, dryrun, imagenet_lite, smoke_lite"):
        get_protocol("fast")
    with pytest.raises(ReprolibError, match="unknown protocol field 'lr'"):
        get_protocol("rlt", lr=0.1)
    with pytest.raises(ReprolibError, match="must be >= 1"):
        get_protocol("rlt", epochs=0)


def test_ood_images_per_set_and_the_dry_run_preset():
    assert {name: get_protocol(name).ood_per_set for name in ("rlt", "ilm", "smm", "embedded", "smoke")} == \
        dict.fromkeys(("rlt", "ilm", "smm", "embedded", "smoke"), 300)
    dry, rlt = get_protocol("dryrun"), get_protocol("rlt")
    assert (dry.epochs, dry.batch_size, dry.ood_per_set, dry.augment) == (1, 32, 16, False)
    # The dry run keeps RLT's optimisation recipe: only the sizes shrink.
    assert (dry.prompt_lr, dry.lp_lr, dry.milestones, dry.gamma, dry.seed, dry.flip) == \
        (rlt.prompt_lr, rlt.lp_lr, rlt.milestones, rlt.gamma, rlt.seed, rlt.flip)
