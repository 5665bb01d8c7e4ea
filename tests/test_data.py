"""reprolib.data: registry, embedded sets, glyphs, paper-set code paths on fake folders, CLI."""

import dataclasses
import gzip
import pickle
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import torch

from reprolib.cli import main as cli_main
from reprolib.data import embedded, get_dataset, glyphs, info, names
from reprolib.data.catalog import KINDS, TORCHVISION
from reprolib.data.registry import reader
from reprolib.data.split import ImageSplit
from reprolib.errors import ReprolibError

# The papers' targets and the embedded study's sets: value checks below read these entries (a new
# entry is checked by the parametrised tests, with no edit here).
PAPER = ["cifar10", "cifar100", "svhn", "gtsrb", "flowers102", "dtd", "oxfordpets", "eurosat",
         "food101", "sun397", "stanfordcars"]
EMBEDDED = ["fashion_mnist", "digits", "glyphs"]


def _one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(ReprolibError) as err:
        fn(*args, **kwargs)
    assert "\n" not in str(err.value)
    return str(err.value)


# ---- registry -------------------------------------------------------------------------

def test_names_and_static_info():
    assert names() == names("embedded") + names("paper")     # embedded first, then the paper sets
    assert [n for n in names("embedded") if n in EMBEDDED] == EMBEDDED
    assert [n for n in names("paper") if n in PAPER] == PAPER
    expected_prompt = {"cifar10": 32, "cifar100": 32, "svhn": 32, "gtsrb": 32, "digits": 20, "glyphs": 20,
                       "fashion_mnist": 28, **{n: 128 for n in PAPER[4:]}}
    for name, size in expected_prompt.items():
        meta = info(name)
        assert meta.prompt_size == size and meta.name == name
        assert len(meta.class_names) == meta.num_classes
    assert info("gtsrb").num_classes == 43 and info("sun397").num_classes == 397
    assert info("fashion_mnist").class_names[0] == "T-shirt/top"
    assert info("eurosat").class_names[-1] == "sea lake"
    with pytest.raises(dataclasses.FrozenInstanceError):
        info("digits").num_classes = 3


def test_unknown_names_and_bad_arguments():
    msg = _one_line_error(get_dataset, "mnist", "train")
    assert "'mnist'" in msg and "cifar10" in msg and "glyphs" in msg
    msg = _one_line_error(get_dataset, "digits", "val")
    assert "'val'" in msg and "train, test" in msg
    assert "'imagenet'" in _one_line_error(info, "imagenet")
    assert "download" in _one_line_error(get_dataset, "digits", "train", download="yes")


def test_import_is_light():
    code = ("import sys, reprolib.data as d, reprolib.protocols; d.names(); d.info('cifar10'); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_catalog_imports_no_loader():
    # the static facts sit below the loaders: loaders import the catalog, never the reverse
    code = ("import sys, reprolib.data.catalog; "
            "loaded = sorted(m for m in sys.modules if m.startswith('reprolib.data.')); "
            "assert loaded == ['reprolib.data.catalog'], loaded")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", names())
def test_every_entry_names_a_reader(name):
    assert callable(reader(info(name).loader))


def test_the_known_sets_readers_and_bad_references():
    assert {n: info(n).loader.rpartition(":")[2] for n in EMBEDDED} == {
        "fashion_mnist": "read_fashion_mnist", "digits": "read_digits", "glyphs": "read_glyphs"}
    assert {info(n).loader for n in PAPER} == {TORCHVISION}
    assert "'os:getcwd' is not 'reprolib.data.<module>:<function>'" in _one_line_error(reader, "os:getcwd")
    assert "names no reader" in _one_line_error(reader, "reprolib.data.paper:no_such_reader")


@pytest.mark.parametrize("name", names())
def test_dataset_facts_are_consistent(name):
    meta = info(name)
    assert meta.kind in KINDS and meta.name == name and meta.num_classes == len(meta.class_names) >= 2
    assert meta.channels in (1, 3) and meta.image_size >= 1 and meta.prompt_size >= 1
    # OOD partners: other registered sets, no repeats (an entry's own list: another set's
    # registration never changes it, so it never changes a shipped run)
    assert name not in meta.ood_partners and len(set(meta.ood_partners)) == len(meta.ood_partners)
    assert set(meta.ood_partners) <= set(names())
    if meta.kind == "paper":   # served at the prompt size (VP's copy), as the ILM-VP pipeline
        assert meta.image_size == meta.prompt_size and meta.channels == 3
    assert all(batch >= 1 for _, batch in meta.legacy_ece_batches)


def test_the_papers_and_embedded_facts():
    # the papers halve the batch for exactly DTD and OxfordPets
    assert [n for n in PAPER + EMBEDDED if info(n).small_batch] == ["dtd", "oxfordpets"]
    # mirroring changes the meaning of digits and letters only
    assert [n for n in EMBEDDED + PAPER if not info(n).mirror_safe] == ["digits", "glyphs", "svhn"]
    # prompt sizes: 32 / 128 for paper sets, 20 for embedded targets, 28 for Fashion-MNIST (the
    # source set itself); a prompt never shrinks a 28 px image
    assert {info(n).prompt_size for n in PAPER} == {32, 128}
    assert {n: (info(n).channels, info(n).prompt_size) for n in EMBEDDED} == \
        {"fashion_mnist": (1, 28), "digits": (1, 20), "glyphs": (1, 20)}


def test_ood_partners_of_the_targets_that_have_them():
    assert info("digits").ood_partners == ("fashion_mnist", "glyphs")
    assert info("glyphs").ood_partners == ("fashion_mnist", "digits")
    assert info("cifar10").ood_partners == ("svhn", "dtd")


# ---- digits ---------------------------------------------------------------------------

def test_digits_split_is_stratified_fixed_and_in_range():
    train, test = get_dataset("digits", "train"), get_dataset("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    x, y = train.tensors()
    assert x.shape == (1437, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.long
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    totals = train.class_counts() + test.class_counts()
    assert int(totals.sum()) == 1797
    assert torch.all((test.class_counts() - 0.2 * totals).abs() <= 1)   # stratified 80/20
    split = embedded.digits_split_indices()
    assert not set(split["train"]) & set(split["test"])
    assert torch.equal(get_dataset("digits", "test").labels, test.labels)   # fixed
    assert "stratified" in test.split_note and "seed 0" in test.split_note
    from sklearn.datasets import load_digits

    raw = load_digits()
    assert torch.allclose(test.tensors()[0][:, 0], torch.from_numpy(raw.images[split["test"]] / 16).float())


# ---- ImageSplit -----------------------------------------------------------------------

def test_subset_and_batches_are_deterministic():
    data = get_dataset("digits", "test")
    sub = data.subset([5, 1, 7])
    assert len(sub) == 3 and torch.equal(sub.labels, data.labels[[5, 1, 7]])
    assert torch.equal(sub.tensors()[0], data.tensors()[0][[5, 1, 7]])
    plain = list(data.batches(100))
    assert [len(y) for _, y in plain] == [100, 100, 100, 60]
    assert torch.equal(torch.cat([y for _, y in plain]), data.labels)
    runs = [torch.cat([y for _, y in data.batches(64, shuffle=True, generator=torch.Generator().manual_seed(s))])
            for s in (4, 4, 5)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    assert torch.equal(torch.sort(runs[0]).values, torch.sort(data.labels).values)   # each image once
    assert "batch_size" in _one_line_error(lambda: next(data.batches(0)))


# ---- Fashion-MNIST ----------------------------------------------------------------------

def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_idx_parser_on_fake_files(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (6, 28, 28)), np.array([3, 1, 4, 1, 5, 9])
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    monkeypatch.setenv(embedded.FASHION_MNIST_ENV, str(tmp_path))
    data = get_dataset("fashion_mnist", "train", root=tmp_path / "empty")
    x, y = data.tensors()
    assert y.tolist() == labels.tolist()
    assert torch.allclose(x[:, 0], torch.from_numpy(images / 255).float())


def test_fashion_mnist_missing_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(embedded.FASHION_MNIST_ENV, str(tmp_path))
    msg = _one_line_error(get_dataset, "fashion_mnist", "test", root=tmp_path)
    assert "make data" in msg and "dataset-fashion-mnist" in msg and "--download" in msg


@pytest.mark.skipif(not embedded.FASHION_MNIST_DIR.is_dir(), reason="Debian dataset-fashion-mnist not installed")
def test_fashion_mnist_real_files():
    train, test = get_dataset("fashion_mnist", "train"), get_dataset("fashion_mnist", "test")
    assert (len(train), len(test)) == (60000, 10000)
    assert train.class_counts().tolist() == [6000] * 10 and test.class_counts().tolist() == [1000] * 10
    assert int(train.labels[0]) == 9                      # the first training image is an ankle boot
    x, _ = test.tensors()
    assert x.shape == (10000, 1, 28, 28) and float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert 0.2 < float(x.mean()) < 0.4                    # Fashion-MNIST's mean intensity is ~0.29


# ---- glyphs -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def glyph_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("glyphs")
    return root, get_dataset("glyphs", "train", root=root), get_dataset("glyphs", "test", root=root)


@pytest.mark.slow
def test_glyphs_shapes_classes_and_font_disjoint_split(glyph_root):
    root, train, test = glyph_root
    (cache,) = list(root.glob("glyphs_v1_*.pt"))
    data = torch.load(cache, weights_only=True)
    test_ids = {i for i, f in enumerate(data["fonts"]) if f in data["test_fonts"]}
    assert test_ids and len(test_ids) < len(data["fonts"])
    is_test = torch.tensor([int(i) in test_ids for i in data["font_ids"]])
    assert len(test) == int(is_test.sum()) and len(train) == int((~is_test).sum())
    per_font = 10 * data["copies"]
    assert len(train) + len(test) == per_font * len(data["fonts"]) >= 2000
    for split in (train, test):
        counts = split.class_counts()
        assert torch.all(counts == counts[0]) and int(counts[0]) > 0   # all 10 classes, balanced
        x, _ = split.tensors()
        assert x.shape[1:] == (1, 28, 28) and float(x.min()) >= 0 and float(x.max()) <= 1
        assert float(x.flatten(1).amax(1).min()) > 0.5                  # no blank image
        ink = x.flatten(1).mean(1)
        assert float(ink.min()) > 0.02 and float(ink.max()) < 0.7
    assert all(f in test.split_note for f in data["test_fonts"])
    # Jitter: copies of one font's letter differ, yet stay close to each other.
    first = data["images"][: data["copies"]].float() / 255
    assert not torch.equal(first[0], first[1])
    assert float((first[0] - first[1]).abs().mean()) < 0.3


@pytest.mark.slow
def test_glyphs_cache_round_trip(glyph_root):
    root, train, _ = glyph_root
    again = get_dataset("glyphs", "train", root=root)     # read from the cache
    assert torch.equal(again.tensors()[0], train.tensors()[0]) and torch.equal(again.labels, train.labels)
    assert not list(root.glob(".*tmp"))                   # atomic write left no temp file


def test_glyph_build_is_deterministic():
    fonts = glyphs.find_fonts(False)[:4]                  # matplotlib's bundled fonts only: fast
    a, b = glyphs.build_glyphs(fonts, copies=2), glyphs.build_glyphs(fonts, copies=2)
    assert torch.equal(a["images"], b["images"]) and a["test_fonts"] == b["test_fonts"]
    assert a["images"].shape == (4 * 10 * 2, 1, 28, 28)
    c = glyphs.build_glyphs(fonts, copies=2, seed=1)
    assert not torch.equal(a["images"], c["images"])


def test_glyph_fonts_come_only_from_matplotlib_and_dejavu():
    """Other installed fonts (Debian's chromium brings Liberation) must not change the glyphs set."""
    import matplotlib

    allowed = (Path(matplotlib.get_data_path()) / "fonts", Path("/usr/share/fonts/truetype/dejavu"))
    files = glyphs._font_files(True)
    assert glyphs.SYSTEM_FONT_DIRS == ("/usr/share/fonts/truetype/dejavu",)
    assert files and all(any(f.is_relative_to(a) for a in allowed) for f in files)
    assert not any("iberation" in f.name for f in files)


# ---- paper sets: error path and code path on fake folders ----------------------------------

def test_paper_set_missing_is_one_line(tmp_path):
    msg = _one_line_error(get_dataset, "cifar10", "train", root=tmp_path)
    assert "cifar10 not found under" in msg and str(tmp_path) in msg and "--download" in msg
    assert "eurosat" in _one_line_error(get_dataset, "eurosat", "test", root=tmp_path)


def _fake_cifar10(root, rng) -> dict[str, np.ndarray]:
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    arrays = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data, labels = rng.integers(0, 256, (4, 3072)).astype(np.uint8), rng.integers(0, 10, 4).tolist()
        arrays[name] = (data, labels)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["air_plane"] + [f"thing{i}" for i in range(1, 10)]}, f)
    return arrays


def test_cifar10_code_path_on_a_fake_folder(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)   # fake files, fake md5
    arrays = _fake_cifar10(tmp_path, np.random.default_rng(1))
    train = get_dataset("cifar10", "train", root=tmp_path)
    assert not train.in_memory and len(train) == 20
    assert train.info.class_names[0] == "air plane" and "official" in train.split_note
    x, y = train.tensors()
    expected = np.concatenate([arrays[f"data_batch_{i}"][0] for i in range(1, 6)]).reshape(20, 3, 32, 32)
    assert torch.allclose(x, torch.from_numpy(expected / 255).float())
    assert y.tolist() == sum((arrays[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert len(list((tmp_path / "cache").glob("cifar10_train_32_*.u8"))) == 1   # uint8, memory-mapped
    cached = get_dataset("cifar10", "train", root=tmp_path)
    assert not cached.in_memory and torch.equal(cached.tensors()[0], x) and cached.info == train.info
    lazy_sub = get_dataset("cifar10", "test", root=tmp_path).subset([3, 0])
    assert torch.equal(lazy_sub.labels, torch.tensor(arrays["test_batch"][1])[[3, 0]])


def test_eurosat_gets_a_real_stratified_split(tmp_path):
    from PIL import Image

    classes = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
               "PermanentCrop", "Residential", "River", "SeaLake"]
    for c, name in enumerate(classes):
        folder = tmp_path / "eurosat" / "eurosat" / "2750" / name
        folder.mkdir(parents=True)
        for k in range(5):   # each image is one flat colour encoding its id
            Image.new("RGB", (64, 64), (5 * c + k, 0, 0)).save(folder / f"{name}_{k}.png")
    train, test = get_dataset("eurosat", "train", root=tmp_path), get_dataset("eurosat", "test", root=tmp_path)
    assert (len(train), len(test)) == (40, 10)
    assert test.class_counts().tolist() == [1] * 10 and train.class_counts().tolist() == [4] * 10
    assert "no official split" in train.split_note and "stratified" in train.split_note
    assert train.info.class_names[2] == "herbaceous vegetation"
    x_train, x_test = train.tensors()[0], test.tensors()[0]
    assert x_train.shape == (40, 3, 128, 128)
    ids = lambda x: set(torch.round(x[:, 0, 64, 64] * 255).long().tolist())  # noqa: E731
    assert not ids(x_train) & ids(x_test) and len(ids(x_train) | ids(x_test)) == 50
    again = get_dataset("eurosat", "test", root=tmp_path)
    assert torch.equal(again.tensors()[0], x_test)


# ---- CLI --------------------------------------------------------------------------------

def test_cli_list_prepare_and_errors(tmp_path, capsys):
    assert cli_main(["data", "--list"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == len(names()) and "stanfordcars" in out
    assert cli_main(["data", "--prepare", "--datasets", "digits", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1437" in out and "360" in out and "stratified" in out
    assert cli_main(["data", "--prepare", "--datasets", "bogus"]) == 2
    assert "unknown dataset 'bogus'" in capsys.readouterr().err


def test_image_split_rejects_bad_construction():
    with pytest.raises(ValueError):   # 3 images, 2 labels
        ImageSplit(info("digits"), "train", "", torch.zeros(2, dtype=torch.long), torch.zeros(3, 1, 8, 8))
