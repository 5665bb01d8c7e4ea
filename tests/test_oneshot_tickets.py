"""Paper-profile tickets: one-shot pruning of (here randomly initialised) torchvision weights."""

import json

import pytest

from reprolib.config import load_profile
from reprolib.errors import ReprolibError
from reprolib.study.ledger import tickets_table
from reprolib.models import get_backbone, torchvision_resnets
from reprolib.sparsity.tickets import make_tickets


@pytest.fixture
def paper_offline(tmp_path, monkeypatch):
    """The paper profile with resnet18, its ImageNet download replaced by random weights."""
    def random_weights(name, weights, root=None, download=False):
        assert weights == "ResNet18_Weights.IMAGENET1K_V1"   # the registry's enum reaches the loader
        return get_backbone(name, weights=None).net.state_dict()

    monkeypatch.setattr(torchvision_resnets, "torchvision_state_dict", random_weights)
    return load_profile("paper", backbone="resnet18", artifacts=str(tmp_path), download=False)


def test_tickets_command_writes_one_shot_reports(paper_offline, tmp_path):
    made = make_tickets(paper_offline, [0, 1, 2], kinds=["imp", "random"], progress=False)
    assert [(t["kind"], t["level"], t["status"]) for t in made] == [
        ("magnitude", 1, "made"), ("magnitude", 2, "made"), ("random", 1, "made"), ("random", 2, "made")]
    for t in made:   # densities of the prunable weights are 0.8^level, and nothing claims to be IMP
        assert t["density"] == pytest.approx(0.8 ** t["level"], abs=1e-3)
        assert t["upstream_test_accuracy"] is None and "not IMP" in t["note"]
    report = json.loads((tmp_path / "tickets/magnitude/level_02/sparsity.json").read_text())
    assert report["density_rlt"] == pytest.approx(made[1]["density_rlt"])
    again = make_tickets(paper_offline, [2], kinds=["magnitude"], progress=False)
    assert again[0]["status"] == "existing"
    table = tickets_table(tmp_path)
    assert list(table["ticket_kind"]) == ["magnitude", "magnitude", "random", "random"]
    assert table["upstream_accuracy"].isna().all()


def test_unknown_kind_is_one_line(paper_offline):
    with pytest.raises(ReprolibError, match="unknown ticket kind 'lottery'"):
        make_tickets(paper_offline, [1], kinds=["lottery"], progress=False)
