"""Protocol presets carry the papers' schedules, the methods' entries their numbers per preset;
unknown names and fields are one-line errors."""

import pytest

from reprolib.data import info as data_info
from reprolib.data import names as data_names
from reprolib.errors import ReprolibError
from reprolib.prompts.kinds import flips
from reprolib.protocols import Hyperparameters, get_protocol, names
from reprolib.transfer.registry import get, method_hparams


def hp(method: str, preset: str) -> dict:
    """The method's numbers under the preset, as a run reads them."""
    return method_hparams(get(method), get_protocol(preset))


def test_rlt_preset_is_the_papers():
    p = get_protocol("rlt")
    assert (p.epochs, hp("vp", "rlt")["prompt_lr"], hp("lp", "rlt")["lp_lr"], p.batch_size) == (100, 0.01, 0.01, 128)
    assert p.milestone_epochs(p.epochs) == [50, 72] and p.gamma == 0.1 and not hp("smm", "rlt")["augment"]
    # Issue 10 fix 3: RLT feeds one --batch_size (128) to every loader, DTD and Pets included.
    assert {n: p.batch_size_for(n) for n in data_names(kind="paper")} == dict.fromkeys(data_names(kind="paper"), 128)
    with pytest.raises(ReprolibError, match="unknown dataset 'imagenet'"):
        p.batch_size_for("imagenet")


def test_ilm_and_smm_presets():
    ilm, smm = get_protocol("ilm"), get_protocol("smm")
    assert (ilm.epochs, hp("lp", "ilm")["lp_lr"], hp("vp", "ilm")["prompt_lr"]) == (200, 0.1, 0.01)
    assert ilm.milestone_epochs(200) == [100, 144]
    numbers = hp("smm", "smm")
    assert (smm.epochs, smm.batch_size, numbers["prompt_lr"], numbers["generator_lr"], numbers["generator_lr_vit"]) == \
        (200, 256, 0.01, 0.01, 0.001)
    assert smm.milestone_epochs(200) == [100, 144] and numbers["augment"]
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
    smm = hp("smm", "smm")
    assert smm["flip"] == "always" and hp("full", "smm")["flip"] == "always"
    assert flips(smm, data_info("svhn")) and flips(smm, data_info("gtsrb")) and flips(smm, data_info("digits"))
    for name in ("embedded", "smoke", "rlt", "ilm"):
        p = hp("smm", name)
        assert p["flip"] == "mirror_safe"
        assert not flips(p, data_info("svhn")) and not flips(p, data_info("digits")) and flips(p, data_info("gtsrb"))
    with pytest.raises(ReprolibError, match="unknown flip 'never'; valid choices: always, mirror_safe"):
        flips({"flip": "never"}, data_info("svhn"))


def test_embedded_and_smoke_are_short():
    assert get_protocol("smoke").epochs <= 2 < get_protocol("embedded").epochs <= 20


def test_to_dict_round_trips_every_field():
    d = get_protocol("rlt").to_dict()
    assert d["name"] == "rlt" and d["milestones"] == [0.5, 0.72] and d["epochs"] == 100


def test_overrides_and_errors():
    assert get_protocol("rlt", epochs=10).milestone_epochs(10) == [5, 7]
    assert get_protocol("rlt").epochs == 100   # the preset itself is unchanged
    with pytest.raises(ReprolibError, match="unknown protocol 'fast'; valid choices: " + ", ".join(names())):
        get_protocol("fast")
    with pytest.raises(ReprolibError, match="unknown protocol field 'lr'"):
        get_protocol("rlt", lr=0.1)
    with pytest.raises(ReprolibError, match="unknown protocol field 'lp_lr'"):   # a method's number, not the preset's
        get_protocol("rlt", lp_lr=0.1)
    with pytest.raises(ReprolibError, match="must be >= 1"):
        get_protocol("rlt", epochs=0)


def test_ood_images_per_set_and_the_dry_run_preset():
    assert {name: get_protocol(name).ood_per_set for name in ("rlt", "ilm", "smm", "embedded", "smoke")} == \
        dict.fromkeys(("rlt", "ilm", "smm", "embedded", "smoke"), 300)
    dry, rlt = get_protocol("dryrun"), get_protocol("rlt")
    assert (dry.epochs, dry.batch_size, dry.ood_per_set, hp("smm", "dryrun")["augment"]) == (1, 32, 16, False)
    # The dry run keeps RLT's optimisation recipe: only the sizes shrink.
    assert (dry.milestones, dry.gamma, dry.seed) == (rlt.milestones, rlt.gamma, rlt.seed)
    for method in ("lp", "vp", "smm", "full"):
        assert hp(method, "dryrun") == hp(method, "rlt")


def test_hyperparameters_take_a_presets_values_where_it_differs_and_check_names():
    numbers = Hyperparameters({"lr": 0.01, "augment": False}, {"smm": {"augment": True}})
    assert numbers.for_protocol(get_protocol("smm")) == {"lr": 0.01, "augment": True}
    assert numbers.for_protocol(get_protocol("rlt", epochs=3)) == {"lr": 0.01, "augment": False}
    both = numbers + Hyperparameters({"gen": 1.0}, {"ilm": {"gen": 2.0}})
    assert both.names() == ("lr", "augment", "gen") and both.for_protocol(get_protocol("ilm"))["gen"] == 2.0
    with pytest.raises(ReprolibError, match="unknown protocol preset 'fast'"):
        Hyperparameters({"lr": 0.01}, {"fast": {"lr": 0.1}})
    with pytest.raises(ReprolibError, match="unknown smm hyperparameter 'momentum'; valid choices: lr"):
        Hyperparameters({"lr": 0.01}, {"smm": {"momentum": 0.9}})
    with pytest.raises(ReprolibError, match="defined twice"):
        numbers + numbers
