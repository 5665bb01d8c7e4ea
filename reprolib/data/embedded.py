"""Offline embedded datasets: Fashion-MNIST (the upstream source) and sklearn digits.

Fashion-MNIST is read from the raw idx files (gzip + numpy, well under a second) found in,
in order: $REPROLIB_FASHION_MNIST_DIR, else FASHION_MNIST_DIR (the Debian package
dataset-fashion-mnist); then torchvision's layout under root (root/FashionMNIST/raw);
then, only with download=True, torchvision's FashionMNIST downloader into root.
Official split: 60,000 train / 10,000 test.

Digits is sklearn's load_digits (1,797 8x8 images, values 0..16 scaled to [0, 1] by /16),
split once into a fixed stratified 80/20 train/test (sklearn train_test_split, seed 0).
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np
import torch

from reprolib.data.catalog import info
from reprolib.data.split import ImageSplit
from reprolib.errors import ReprolibError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_ENV = "REPROLIB_FASHION_MNIST_DIR"
_IDX_PREFIX = {"train": "train", "test": "t10k"}
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


def read_idx(path: Path) -> np.ndarray:
    """Parse one idx file (optionally gzipped): big-endian header, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ReprolibError(f"{path} is not an unsigned-byte idx file; reinstall dataset-fashion-mnist")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ReprolibError(f"{path} is truncated: header says {shape}, found {array.size} values")
    return array.reshape(shape)


def fashion_mnist_dirs(root: Path) -> list[Path]:
    """Directories searched for the raw idx files, in order."""
    system = Path(os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR)
    return [system, root / "FashionMNIST" / "raw"]


def _find_idx(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _find_pair(root: Path, split: str) -> tuple[Path, Path] | None:
    prefix = _IDX_PREFIX[split]
    for directory in fashion_mnist_dirs(root):
        images = _find_idx(directory, f"{prefix}-images-idx3-ubyte")
        labels = _find_idx(directory, f"{prefix}-labels-idx1-ubyte")
        if images and labels:
            return images, labels
    return None


def load_fashion_mnist(split: str, root: Path, download: bool = False) -> ImageSplit:
    """Fashion-MNIST `split` as uint8 images in memory (served as float in [0, 1])."""
    pair = _find_pair(root, split)
    if pair is None and download:
        _download_fashion_mnist(root)
        pair = _find_pair(root, split)
    if pair is None:
        searched = ", ".join(str(d) for d in fashion_mnist_dirs(root))
        raise ReprolibError(
            f"Fashion-MNIST not found (searched {searched}); run `make data` (installs the Debian "
            "package dataset-fashion-mnist) or pass --download (torchvision, needs internet)"
        )
    images = torch.from_numpy(read_idx(pair[0]).copy()).unsqueeze(1)  # (N, 1, 28, 28) uint8
    labels = torch.from_numpy(read_idx(pair[1]).astype(np.int64))
    if len(images) != len(labels):
        raise ReprolibError(f"{pair[0]} has {len(images)} images but {pair[1]} has {len(labels)} labels")
    note = f"Fashion-MNIST official {split} split ({len(labels)} images) from {pair[0].parent}"
    return ImageSplit(info("fashion_mnist"), split, note, labels, images=images,
                      definition={"source": "Fashion-MNIST idx files", "split": f"official {split}"})


def read_fashion_mnist(name: str, split: str, root: Path, download: bool, size: int | None) -> ImageSplit:
    """The fashion_mnist entry's reader (`DatasetInfo.loader`): served at its native 28 px."""
    return load_fashion_mnist(split, root, download)


def _download_fashion_mnist(root: Path) -> None:
    from torchvision.datasets import FashionMNIST

    try:
        FashionMNIST(str(root), train=True, download=True)
        FashionMNIST(str(root), train=False, download=True)
    except Exception as err:  # network errors come in many types; report one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ReprolibError(f"could not download Fashion-MNIST into {root}: {first}") from err


def digits_split_indices(y: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The fixed stratified 80/20 split of sklearn digits (labels `y`): sorted indices per split."""
    from sklearn.model_selection import train_test_split

    if y is None:
        from sklearn.datasets import load_digits as sk_load_digits

        y = sk_load_digits().target
    train, test = train_test_split(
        np.arange(len(y)), test_size=DIGITS_TEST_FRACTION, stratify=y, random_state=DIGITS_SPLIT_SEED
    )
    return {"train": np.sort(train), "test": np.sort(test)}


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(images, labels, split indices) of sklearn's bundled digits, read once per process: a run's
    id reads its splits too (reprolib.transfer.description), and the file ships with sklearn."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    return bunch.images, bunch.target, digits_split_indices(bunch.target)


def load_digits(split: str, root: Path | None = None, download: bool = False) -> ImageSplit:
    """sklearn digits `split`: float32 (N, 1, 8, 8) in [0, 1]. root/download are unused."""
    all_images, targets, indices = _digits()
    idx = indices[split]
    images = torch.from_numpy(all_images[idx].astype(np.float32) / 16.0).unsqueeze(1)
    labels = torch.from_numpy(targets[idx].astype(np.int64))
    note = (f"sklearn digits ({len(targets)} images), stratified "
            f"{round(100 * (1 - DIGITS_TEST_FRACTION))}/{round(100 * DIGITS_TEST_FRACTION)} "
            f"train_test_split, seed {DIGITS_SPLIT_SEED}")
    definition = {"source": "sklearn load_digits, values / 16", "split": f"stratified train_test_split {split}",
                  "test_fraction": DIGITS_TEST_FRACTION, "seed": DIGITS_SPLIT_SEED}
    return ImageSplit(info("digits"), split, note, labels, images=images, definition=definition)


def read_digits(name: str, split: str, root: Path, download: bool, size: int | None) -> ImageSplit:
    """The digits entry's reader (`DatasetInfo.loader`): ships with sklearn, so `download` is unused;
    served at its native 8 px."""
    return load_digits(split, root, download)
