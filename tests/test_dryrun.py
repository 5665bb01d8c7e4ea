"""reprolib.dryrun: synthetic sets read by torchvision's own classes and by reprolib's loaders,
random checkpoints found offline by torch hub, torchvision and reprolib.get_backbone."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from reprolib.data import get_dataset, info
from reprolib.data.paper import _OFFICIAL, _UNSPLIT
from reprolib.dryrun import (NEEDS_BYPASS, arch_names, dataset_names, integrity_checks_bypassed, write_dryrun_root,
                             write_random_imagenet_weights, write_synthetic_dataset)
from reprolib.dryrun.formats import SPECS, UNSPLIT_MIN_PER_CLASS
from reprolib.errors import ReprolibError

N_TRAIN, N_TEST = 2, 1
# Real class counts everywhere except SUN397, written as a 40-class subset (its ClassName.txt
# lists 40 classes): 397 x 5 images made reprolib's decode the slowest test by far.
WRITTEN_CLASSES = {name: SPECS[name][0] for name in SPECS} | {"sun397": 40}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dryrun_data")
    for name in dataset_names():
        record = write_synthetic_dataset(name, root, N_TRAIN, N_TEST, num_classes=WRITTEN_CLASSES[name])
        assert record["status"] == "written"
    return root


def _torchvision(name: str, split: str, root):
    """Build the torchvision dataset exactly as reprolib.data.paper does (same class, kwargs, folder)."""
    import torchvision.datasets as tvd

    if name in _OFFICIAL:
        cls_name, per_split, extra, _ = _OFFICIAL[name]
        kwargs = {**per_split[split], **extra}
    else:
        cls_name, kwargs = _UNSPLIT[name], {}
    return getattr(tvd, cls_name)(str(root / name), download=False, **kwargs)


def _labels(dataset) -> list[int]:
    from reprolib.data.paper import dataset_labels

    return dataset_labels(dataset).tolist()


def test_every_paper_set_is_covered():
    """Every registered set the torchvision reader serves has its keywords and a dry-run writer."""
    from reprolib.data import names
    from reprolib.data.catalog import TORCHVISION

    assert set(dataset_names()) == set(_OFFICIAL) | set(_UNSPLIT) == {n for n in names() if info(n).loader == TORCHVISION}
    assert all(SPECS[n][0] == info(n).num_classes for n in dataset_names())


@pytest.mark.parametrize("name", sorted(SPECS))
def test_torchvision_reads_each_set(data_root, name):
    k = WRITTEN_CLASSES[name]
    splits = ["train", "test"] if name in _OFFICIAL else ["train"]
    for split in splits:
        with integrity_checks_bypassed():
            dataset = _torchvision(name, split, data_root)
        labels = _labels(dataset)
        if name in _OFFICIAL:
            assert len(dataset) == k * (N_TRAIN if split == "train" else N_TEST)
        else:
            assert len(dataset) == k * max(N_TRAIN + N_TEST, UNSPLIT_MIN_PER_CLASS)
        assert sorted(set(labels)) == list(range(k))
        classes = getattr(dataset, "classes", None)
        if classes is not None:
            assert len(classes) == k
        image, label = dataset[len(dataset) - 1]
        assert image.mode == "RGB" and label == labels[-1]


def test_md5_sets_need_the_bypass_and_it_is_undone(data_root):
    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.utils as tv_utils

    for name in NEEDS_BYPASS:
        with pytest.raises(RuntimeError, match="corrupted"):
            _torchvision(name, "train", data_root)
    with integrity_checks_bypassed() as patched:
        assert "torchvision.datasets.cifar" in patched and tv_cifar.check_integrity is not tv_utils.check_integrity
        with pytest.raises(RuntimeError):   # a missing file still fails inside the bypass
            _torchvision("cifar10", "train", data_root / "nowhere")
    assert tv_cifar.check_integrity is tv_utils.check_integrity
    for name in set(dataset_names()) - set(NEEDS_BYPASS):   # the others need no bypass at all
        assert len(_torchvision(name, "train", data_root)) > 0


@pytest.mark.parametrize("name", sorted(SPECS))
def test_reprolib_get_dataset_on_the_dry_run(data_root, name):
    meta = info(name)
    size, k = meta.prompt_size, WRITTEN_CLASSES[name]
    sizes = {}
    for split in ("train", "test"):
        with integrity_checks_bypassed():
            data = get_dataset(name, split, root=data_root, download=False)
        x, y = data.tensors()
        sizes[split] = len(y)
        assert x.shape == (len(y), 3, size, size) and x.dtype == torch.float32
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and float(x.std()) > 0.02
        assert sorted(set(y.tolist())) == list(range(k)) and len(data.info.class_names) == meta.num_classes
    if name in _OFFICIAL:
        assert sizes == {"train": k * N_TRAIN, "test": k * N_TEST}
    else:   # reprolib's stratified 80/20 split of the single pool
        assert sizes == {"train": 4 * k, "test": k}


def test_classes_are_learnable_by_colour(data_root):
    """Class looks differ: nearest class-mean colour classifies the (unseen) test images well."""
    with integrity_checks_bypassed():
        train, test = (get_dataset("cifar100", s, root=data_root).tensors() for s in ("train", "test"))
    means = torch.stack([train[0][train[1] == c].mean(dim=(0, 2, 3)) for c in range(100)])
    predicted = torch.cdist(test[0].mean(dim=(2, 3)), means).argmin(1)
    assert (predicted == test[1]).float().mean() > 0.5


def test_writes_are_idempotent_and_never_clobber(tmp_path):
    first = write_synthetic_dataset("eurosat", tmp_path, 1, 1, seed=3)
    before = sorted(p.name for p in (tmp_path / "eurosat" / "eurosat" / "2750" / "Forest").iterdir())
    assert first["status"] == "written" and len(before) == UNSPLIT_MIN_PER_CLASS
    assert write_synthetic_dataset("eurosat", tmp_path, 1, 1, seed=3)["status"] == "exists"
    with pytest.raises(ReprolibError, match="delete it"):
        write_synthetic_dataset("eurosat", tmp_path, 1, 1, seed=4)
    (tmp_path / "dtd" / "dtd").mkdir(parents=True)        # looks like real data: refuse
    with pytest.raises(ReprolibError, match="refusing"):
        write_synthetic_dataset("dtd", tmp_path)
    (tmp_path / "gtsrb").mkdir()                          # an interrupted write of ours: redo it
    (tmp_path / "gtsrb" / ".dryrun.partial").write_text("")
    (tmp_path / "gtsrb" / "junk").write_text("")
    assert write_synthetic_dataset("gtsrb", tmp_path, 1, 1, num_classes=3)["status"] == "written"
    assert not (tmp_path / "gtsrb" / "junk").exists() and not (tmp_path / "gtsrb" / ".dryrun.partial").exists()
    assert json.loads((tmp_path / "gtsrb" / ".dryrun.json").read_text())["num_classes"] == 3


def test_same_seed_same_bytes_and_bad_arguments(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    # scipy stamps the wall clock into a .mat header; the two writes get different clocks,
    # as two writes a second apart did in CI.
    for root, clock in ((a, "Wed Dec  2 00:18:20 2026"), (b, "Wed Dec  2 00:18:21 2026")):
        monkeypatch.setattr("time.asctime", lambda *args, clock=clock: clock)
        write_synthetic_dataset("svhn", root, 1, 1, seed=5)
    assert (a / "svhn" / "train_32x32.mat").read_bytes() == (b / "svhn" / "train_32x32.mat").read_bytes()
    for call, words in [(lambda: write_synthetic_dataset("mnist", tmp_path), ["'mnist'", "cifar10", "stanfordcars"]),
                        (lambda: write_synthetic_dataset("dtd", tmp_path, num_classes=48), ["1..47"]),
                        (lambda: write_synthetic_dataset("cifar10", tmp_path, image_size=64), ["32 x 32"]),
                        (lambda: write_random_imagenet_weights("vgg16", tmp_path), ["'vgg16'", "resnet50"])]:
        with pytest.raises(ReprolibError) as err:
            call()
        message = str(err.value)
        assert "\n" not in message and all(w in message for w in words), message


@pytest.fixture()
def torch_home(tmp_path, monkeypatch):
    """TORCH_HOME=tmp, hub dir set to match, and any download attempt fails loudly."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    torch.hub.set_dir(str(home / "hub"))

    def no_network(*args, **kwargs):
        raise AssertionError(f"tried to download {args[:1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return home


def test_resnet18_weights_found_by_reprolib_offline(torch_home):
    from reprolib.models import get_backbone

    record = write_random_imagenet_weights("resnet18", torch_home)
    assert record["status"] == "written" and record["path"].endswith("hub/checkpoints/resnet18-f37072fd.pth")
    assert write_random_imagenet_weights("resnet18", torch_home)["status"] == "exists"
    saved = torch.load(record["path"], weights_only=True)
    backbone = get_backbone("resnet18", weights="default", root=None, download=False)
    assert torch.equal(backbone.net.conv1.weight, saved["conv1.weight"])
    assert not torch.equal(saved["conv1.weight"], torch.zeros_like(saved["conv1.weight"]))


def test_vit_b_32_weights_found_by_torchvision_offline(torch_home):
    import torchvision.models as tvm

    record = write_random_imagenet_weights("vit_b_32", torch_home, seed=1)
    assert os.path.basename(record["path"]) == os.path.basename(tvm.ViT_B_32_Weights.IMAGENET1K_V1.url)
    state = tvm.ViT_B_32_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=True)
    model = tvm.vit_b_32(weights=None)
    model.load_state_dict(state, strict=True)
    saved = torch.load(record["path"], weights_only=True)
    assert torch.equal(model.conv_proj.weight, saved["conv_proj.weight"])


def test_write_dryrun_root_in_one_call(tmp_path, monkeypatch):
    from reprolib.models import get_backbone

    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("download"))
    summary = write_dryrun_root(tmp_path, datasets=["cifar10", "oxfordpets"], archs=["resnet18"])
    assert {r["status"] for r in summary["datasets"].values()} == {"written"}
    assert summary["weights"]["resnet18"]["status"] == "written" and summary["integrity_bypass_needed"] == ["cifar10"]
    again = write_dryrun_root(tmp_path, datasets=["cifar10", "oxfordpets"], archs=["resnet18"])
    assert {r["status"] for r in [*again["datasets"].values(), *again["weights"].values()]} == {"exists"}
    backbone = get_backbone("resnet18", weights="default", root=tmp_path / "torch_hub", download=False)
    assert backbone.net.fc.out_features == 1000
    pets = get_dataset("oxfordpets", "test", root=tmp_path)
    assert len(pets) == 37 * 2 and np.unique(pets.labels.numpy()).size == 37
    with pytest.raises(ReprolibError, match="valid choices"):
        write_dryrun_root(tmp_path, datasets=["imagenet"])


def test_command_line(tmp_path, capsys):
    from reprolib.dryrun.__main__ import main

    assert main(["--root", str(tmp_path), "--datasets", "dtd", "--archs", "--train", "1", "--test", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["datasets"]["dtd"]["status"] == "written" and summary["weights"] == {}
    assert main(["--root", str(tmp_path), "--datasets", "imagenet"]) == 2
    assert "valid choices" in capsys.readouterr().err
