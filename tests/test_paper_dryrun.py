"""The paper dry run end to end: `run_transfer` on profile paper-dryrun, offline, in seconds.

A tiny dry-run root (synthetic EuroSAT in torchvision's folder layout, random resnet18
"ImageNet" weights under the checkpoint's real name) is written into a temporary workbook
home; LP and VP then run on the dense resnet18 and on its one-shot ticket through the
paper profile's code path: torchvision's dataset class, the torchvision weights loader,
1000-class label mapping, global magnitude pruning of the "ImageNet" weights.
"""

from __future__ import annotations

import pytest

from reprolib.config import load_profile
from reprolib.dryrun import DRYRUN_MARKER, write_dryrun_root
from reprolib.transfer import TransferConfig, run_transfer

PROFILE = "paper-dryrun"


@pytest.fixture
def dryrun_home(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("REPROLIB_HOME", str(tmp_path))
    profile = load_profile(PROFILE)
    root = profile.path("data_root")
    assert root == tmp_path / "data" / "dryrun"
    # every run scores OOD against the profile's targets (cifar10, oxfordpets): they must be there
    write_dryrun_root(root, datasets=["eurosat", "cifar10", "oxfordpets"], archs=[profile.backbone],
                      n_per_class_train=2, n_per_class_test=1)
    assert (root / DRYRUN_MARKER).is_file()
    return profile


@pytest.mark.parametrize("method", ["lp", "vp"])
def test_dense_and_one_shot_runs_on_the_paper_code_path(dryrun_home, method):
    profile = dryrun_home
    for network, level in (("dense", 0), ("LT", 2)):
        cfg = TransferConfig(profile=PROFILE, target="eurosat", method=method, network=network, kind="imp",
                             level=level, n_shot=-1, epochs=1, device="cpu", progress=False)
        record = run_transfer(cfg)
        config = record["config"]
        assert (config["backbone"], config["source"], config["profile"]) == ("resnet18", "imagenet", PROFILE)
        assert "EuroSAT" in config["split"] and "train_test_split" in config["split"]   # torchvision's EuroSAT class
        ticket = config["ticket"]
        if network == "dense":
            assert (ticket["kind"], ticket["density"], ticket["provenance"]) == ("dense", 1.0, "dense")
        else:
            assert ticket["kind"] == "magnitude" and ticket["level"] == 2
            assert ticket["provenance"] == "oneshot" and ticket["upstream_accuracy"] is None   # not a ticket
            assert ticket["density"] == pytest.approx(0.8 ** 2, abs=1e-6)
            assert 0.0 < ticket["density_rlt"] < 1.0
        if method == "vp":
            label_map = record["label_map"]
            assert len(label_map) == 10 and len(set(label_map)) == 10
            assert all(0 <= i < 1000 for i in label_map)   # indices into the 1000 ImageNet classes
            assert config["num_classes"] == 10
        else:
            assert record["label_map"] is None
        assert 0.0 <= record["metrics"]["accuracy"] <= 1.0
    assert profile.download is False


def test_imported_ticket_runs_and_the_claims_label_every_network(dryrun_home):
    """The dry run's stand-in published checkpoint, imported, runs as kind "imported"; the ledger
    carries provenance and the claims say "not testable here" and report one-shot networks apart."""
    from reprolib.study.claims import HOLDS, FAILS, NOT_TESTABLE, UNSURE, claims_table, oneshot_table
    from reprolib.study.ledger import build_ledger
    from reprolib.sparsity.tickets import import_profile_tickets

    profile = dryrun_home
    (report,) = import_profile_tickets(profile)
    assert (report["name"], report["format"], report["provenance"]) == ("dryrun-magnitude80", "zeros", "imported")
    assert report["density"] == pytest.approx(0.2, abs=1e-3)            # 80% sparse per layer, exact zeros
    networks = [("dense", "imp", 0, None), ("LT", "imp", 2, None), ("LT", "imported", 1, "dryrun-magnitude80")]
    for network, kind, level, name in networks:
        record = run_transfer(TransferConfig(profile=PROFILE, target="eurosat", method="lp", network=network, kind=kind,
                                             level=level, pretrained_dir=name, n_shot=-1, epochs=1, device="cpu",
                                             progress=False))
    assert record["config"]["ticket"]["provenance"] == "imported"
    assert record["config"]["ticket"]["density"] == pytest.approx(report["density"])
    ledger = build_ledger(profile.path("artifacts"))
    assert ledger.set_index("ticket_kind")["provenance"].to_dict() == {"imp": "dense", "magnitude": "oneshot",
                                                                       "imported": "imported"}
    assert ledger.loc[ledger["ticket_kind"] == "imported", "ticket_name"].tolist() == ["dryrun-magnitude80"]
    assert claims_table(ledger)["verdict"].tolist() == [NOT_TESTABLE] * 3
    apart = oneshot_table(ledger)
    assert len(apart) == 3 and all("one-shot pruned, not retrained" in c for c in apart["claim"])
    assert set(apart["verdict"]) <= {HOLDS, FAILS, UNSURE, NOT_TESTABLE} and apart.loc[2, "verdict"] == NOT_TESTABLE


def test_md5_checked_sets_read_through_the_marked_root_only(dryrun_home, tmp_path):
    """CIFAR-10's synthetic batches load from the marked root; a copy without the marker fails the md5 check."""
    import shutil

    from reprolib.data import get_dataset
    from reprolib.errors import ReprolibError

    root = dryrun_home.path("data_root")
    split = get_dataset("cifar10", "train", root=root)
    assert len(split.labels) == 20 and "CIFAR-10 official" in split.split_note
    unmarked = tmp_path / "unmarked"
    shutil.copytree(root / "cifar10", unmarked / "cifar10")
    with pytest.raises(ReprolibError, match="dataset cifar10 not found"):
        get_dataset("cifar10", "train", root=unmarked)


@pytest.mark.slow
def test_vit_b_32_lp_vp_and_smm_on_the_paper_code_path(tmp_path, monkeypatch, one_thread):
    """ViT-B/32 with random "ImageNet" weights: LP on the class token, padding VP, SMM's 6-layer generator."""
    import numpy as np

    monkeypatch.setenv("REPROLIB_HOME", str(tmp_path))
    root = load_profile(PROFILE).path("data_root")
    write_dryrun_root(root, datasets=["cifar10", "oxfordpets"], archs=["vit_b_32"], n_per_class_train=1,
                      n_per_class_test=1)
    for method, network, level in (("lp", "LT", 1), ("vp", "dense", 0), ("smm", "dense", 0)):
        cfg = TransferConfig(profile=PROFILE, target="cifar10", method=method, backbone="vit_b_32", network=network,
                             level=level, epochs=1, device="cpu", progress=False)
        record = run_transfer(cfg)
        config = record["config"]
        assert config["backbone"] == "vit_b_32"
        if network == "LT":   # global magnitude pruning of every ViT weight but the stem and the head
            assert config["ticket"]["kind"] == "magnitude"
            assert config["ticket"]["density"] == pytest.approx(0.8, abs=1e-6)
        run_state = np.load(tmp_path / "artifacts" / PROFILE / "runs" / f"{record['id']}.npz")
        if method == "lp":
            assert run_state["head.weight"].shape == (10, 768)        # the class token's width
        elif method == "smm":
            generator = [k for k in run_state.files if k.startswith("prompt.") and k.endswith(".weight")]
            # ViT's generator: five 3x3 conv blocks (3-8-16-32-64-128) and the 128 -> 3 output conv
            assert sum(run_state[k].ndim == 4 for k in generator) == 6
        else:
            assert all(0 <= i < 1000 for i in record["label_map"])
