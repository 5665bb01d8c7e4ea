"""Protocol presets carry the papers' numbers; unknown names and fields are one-line errors."""

import pytest

from reprolib.data import names as data_names
from reprolib.errors import ReprolibError
from reprolib.protocols import get_protocol, names


def test_rlt_preset_is_the_papers():
    p = get_protocol("rlt")
    assert (p.epochs, p.prompt_lr, p.lp_lr, p.batch_size) == (100, 0.01, 0.01, 128)
    assert p.milestone_epochs(p.epochs) == [50, 72] and p.gamma == 0.1 and not p.augment
    assert p.batch_size_for("dtd") == p.batch_size_for("oxfordpets") == 64
    assert p.batch_size_for("cifar10") == 128
    assert [n for n in data_names() if p.batch_size_for(n) == 64] == ["dtd", "oxfordpets"]
    with pytest.raises(ReprolibError, match="unknown dataset 'imagenet'"):
        p.batch_size_for("imagenet")


def test_ilm_and_smm_presets():
    ilm, smm = get_protocol("ilm"), get_protocol("smm")
    assert (ilm.epochs, ilm.lp_lr, ilm.prompt_lr) == (200, 0.1, 0.01)
    assert ilm.milestone_epochs(200) == [100, 144]
    assert (smm.epochs, smm.batch_size, smm.prompt_lr, smm.generator_lr, smm.generator_lr_vit) == (200, 256, 0.01, 0.01, 0.001)
    assert smm.milestone_epochs(200) == [100, 144] and smm.augment and smm.batch_size_for("dtd") == 64


def test_embedded_and_smoke_are_short():
    assert get_protocol("smoke").epochs <= 2 < get_protocol("embedded").epochs <= 20


def test_to_dict_round_trips_every_field():
    d = get_protocol("rlt").to_dict()
    assert d["name"] == "rlt" and d["milestones"] == [0.5, 0.72] and d["epochs"] == 100


def test_overrides_and_errors():
    assert get_protocol("rlt", epochs=10).milestone_epochs(10) == [5, 7]
    assert get_protocol("rlt").epochs == 100   # the preset itself is unchanged
    assert names() == ["rlt", "ilm", "smm", "embedded", "smoke"]
    with pytest.raises(ReprolibError, match="unknown protocol 'fast'; valid choices: rlt, ilm, smm, embedded, smoke"):
        get_protocol("fast")
    with pytest.raises(ReprolibError, match="unknown protocol field 'lr'"):
        get_protocol("rlt", lr=0.1)
    with pytest.raises(ReprolibError, match="must be >= 1"):
        get_protocol("rlt", epochs=0)
