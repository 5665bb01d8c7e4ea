"""Paper targets through torchvision's dataset classes (downloads only with download=True).

Splits (recorded in each ImageSplit's split_note; docs/methods.md s.10 asks for it):
- cifar10, cifar100: official train (50,000) / test (10,000).
- svhn, gtsrb, food101, stanfordcars: torchvision's official train / test.
- flowers102: torchvision's official "train" (1,020) / "test" (6,149); "val" unused.
- dtd: torchvision's official partition 1, "train" (1,880) / "test" (1,880); "val" unused.
- oxfordpets: torchvision's official "trainval" (3,680) / "test" (3,669).
- eurosat, sun397: torchvision ships no split, so we make a real one: a seeded stratified
  80/20 split (sklearn train_test_split, seed 0). NOTE: the public RLT code's EuroSAT split
  is a no-op (it sets attributes the dataset never reads), so it trains and tests on all
  27,000 images (docs/methods.md s.10); our numbers are therefore not comparable with its logs.
  (ILM-VP used CoOp's splits instead; full-data numbers differ across split definitions.)

Images are converted to RGB, resized ONCE from the original to the served side and kept as
uint8. The served side is the prompt size (32 or 128, VP's copy) unless the caller asks for
another (`size`: LP, SMM and the watermark prompts ask for the backbone's input side, so they
never upsample the prompt-size copy; docs/methods.md s.4); see `DatasetInfo.served_side`.
Each (split, side) is decoded once, in DataLoader workers, into a uint8 file under
root/cache/ (reprolib.data.store) that every run and worker maps read-only: whatever the
split's size, no process holds it in its own memory.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reprolib.data.catalog import DatasetInfo, info
from reprolib.data.split import ImageSplit
from reprolib.data.store import cache_key, open_cache, write_cache
from reprolib.errors import ReprolibError
from reprolib.data.integrity import bypassed_for_root, pickles_restricted

STRATIFIED_TEST_FRACTION = 0.2
STRATIFIED_SEED = 0
NUM_WORKERS = min(4, os.cpu_count() or 1)
SMALL_SPLIT = 2048  # below this many images, decode in the main process (no worker start-up)
DECODE_BATCH = 256  # images decoded per DataLoader batch while a cache is built
# How an original becomes a cached image (part of the cache key: change it and caches rebuild).
RESIZE_RULE = "PIL RGB, Image.BILINEAR, reducing_gap=None, to side x side; uint8"

# name -> (torchvision class, split keyword per split, extra kwargs, split note)
_OFFICIAL: dict[str, tuple[str, dict[str, Any], dict[str, Any], str]] = {
    "cifar10": ("CIFAR10", {"train": {"train": True}, "test": {"train": False}}, {}, "CIFAR-10 official train/test"),
    "cifar100": ("CIFAR100", {"train": {"train": True}, "test": {"train": False}}, {}, "CIFAR-100 official train/test"),
    "svhn": ("SVHN", {"train": {"split": "train"}, "test": {"split": "test"}}, {}, "SVHN official train/test (extra unused)"),
    "gtsrb": ("GTSRB", {"train": {"split": "train"}, "test": {"split": "test"}}, {}, "GTSRB official train/test"),
    "flowers102": ("Flowers102", {"train": {"split": "train"}, "test": {"split": "test"}}, {},
                   "Flowers102 torchvision official train/test (val unused)"),
    "dtd": ("DTD", {"train": {"split": "train"}, "test": {"split": "test"}}, {"partition": 1},
            "DTD torchvision official partition 1 train/test (val unused)"),
    "oxfordpets": ("OxfordIIITPet", {"train": {"split": "trainval"}, "test": {"split": "test"}},
                   {"target_types": "category"}, "Oxford-IIIT Pets torchvision official trainval/test"),
    "food101": ("Food101", {"train": {"split": "train"}, "test": {"split": "test"}}, {}, "Food-101 official train/test"),
    "stanfordcars": ("StanfordCars", {"train": {"split": "train"}, "test": {"split": "test"}}, {},
                     "Stanford Cars official train/test"),
}
_UNSPLIT = {"eurosat": "EuroSAT", "sun397": "SUN397"}


def readable(name: str) -> str:
    """'aquarium_fish' -> 'aquarium fish', 'AnnualCrop' -> 'annual crop', 'a/b' -> 'a b'."""
    text = name.replace("_", " ").replace("/", " ").strip()
    if re.fullmatch(r"[A-Z][a-z]+(?:[A-Z][a-z]+)+", text):
        text = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text).lower()
    return " ".join(text.split())


def dataset_labels(dataset: Any) -> torch.Tensor:
    """Labels of any torchvision-style dataset, without decoding images where possible."""
    for attr in ("targets", "labels", "_labels"):
        values = getattr(dataset, attr, None)
        if values is not None and len(values) == len(dataset):
            return torch.as_tensor(np.asarray(values), dtype=torch.long)
    samples = getattr(dataset, "_samples", None) or getattr(dataset, "samples", None)
    if samples is not None and len(samples) == len(dataset):
        return torch.tensor([int(s[1]) for s in samples], dtype=torch.long)
    # Any other dataset: read every item once (slow but always correct; RLT crashed here).
    return torch.tensor([int(dataset[i][1]) for i in range(len(dataset))], dtype=torch.long)


class _Resized(torch.utils.data.Dataset):
    """Wrap a dataset: RGB, resize to size x size, uint8 C x S x S tensors."""

    def __init__(self, dataset: Any, size: int):
        self.dataset, self.size = dataset, size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image
        from torchvision.transforms.functional import pil_to_tensor

        image, label = self.dataset[index]
        if not isinstance(image, Image.Image):
            image = Image.fromarray(np.asarray(image))
        image = image.convert("RGB")
        if image.size != (self.size, self.size):
            image = image.resize((self.size, self.size), Image.BILINEAR, reducing_gap=None)
        return pil_to_tensor(image), int(label)


def _construct(name: str, cls_name: str, kwargs: dict[str, Any], root: Path, download: bool) -> Any:
    """Build the torchvision dataset, turning torchvision's errors into one line."""
    import torchvision.datasets as tvd

    folder = root / name
    try:
        # md5 checks skipped only in a dry-run root; CIFAR's pickles never build more than arrays (integrity.py)
        with bypassed_for_root(root), pickles_restricted():
            return getattr(tvd, cls_name)(str(folder), download=download, **kwargs)
    except ReprolibError:
        raise
    except Exception as err:
        if not download:
            raise ReprolibError(f"dataset {name} not found under {folder}; pass --download (needs internet)") from err
        lines = str(err).strip().splitlines()
        raise ReprolibError(f"could not download {name} into {folder}: {lines[0] if lines else type(err).__name__}") from err


def _stratified_indices(labels: torch.Tensor, split: str) -> torch.Tensor:
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(np.arange(len(labels)), test_size=STRATIFIED_TEST_FRACTION,
                                   stratify=labels.numpy(), random_state=STRATIFIED_SEED)
    return torch.from_numpy(np.sort(train if split == "train" else test))


def _split_definition(name: str) -> dict[str, Any]:
    """What decides which original images a split holds (part of the cache key)."""
    if name in _OFFICIAL:
        cls_name, per_split, extra, _ = _OFFICIAL[name]
        return {"class": cls_name, "splits": per_split, "extra": extra}
    return {"class": _UNSPLIT[name], "stratified": [STRATIFIED_TEST_FRACTION, STRATIFIED_SEED]}


def cache_stem(name: str, split: str, root: Path, size: int) -> Path:
    """Where `name`'s `split` at `size` px is cached (reprolib.data.store; the key names what made it)."""
    key = cache_key({"dataset": name, "split": split, "side": size, "definition": _split_definition(name),
                     "resize": RESIZE_RULE})
    return root / "cache" / f"{name}_{split}_{size}_{key}"


def load_paper(name: str, split: str, root: Path, download: bool = False, size: int | None = None) -> ImageSplit:
    """A paper target's `split` at `static.served_side(size)` (default: its prompt size), memory-mapped
    from its image cache; the cache is built first (decode + resize once) when it is missing or bad."""
    static = info(name)
    size = static.served_side(size)
    static = dataclasses.replace(static, image_size=size)
    stem = cache_stem(name, split, root, size)
    cached = open_cache(stem) or _build_cache(name, split, root, download, size, stem)
    meta = dataclasses.replace(static, class_names=cached.class_names)
    definition = {"split": split, "side": size, "definition": _split_definition(name), "resize": RESIZE_RULE}
    return ImageSplit(meta, split, cached.split_note, cached.labels, cached.images, digest=cached.digest,
                      definition=definition)


def _build_cache(name: str, split: str, root: Path, download: bool, size: int, stem: Path):
    """Read the split through torchvision once, resize every image with PIL, stream it into the cache."""
    if name in _OFFICIAL:
        cls_name, per_split, extra, note = _OFFICIAL[name]
        dataset = _construct(name, cls_name, {**per_split[split], **extra}, root, download)
        labels = dataset_labels(dataset)
        indices = torch.arange(len(labels))
    else:
        dataset = _construct(name, _UNSPLIT[name], {}, root, download)
        all_labels = dataset_labels(dataset)
        indices = _stratified_indices(all_labels, split)
        labels = all_labels[indices]
        pct = round(100 * STRATIFIED_TEST_FRACTION)
        note = (f"{_UNSPLIT[name]} ({len(all_labels)} images, no official split): seeded stratified "
                f"{100 - pct}/{pct} train_test_split, seed {STRATIFIED_SEED}")
    meta = _with_class_names(info(name), dataset)
    note = f"{note}; {split} {len(labels)} images, resized to {size}px"
    workers = 0 if len(labels) < SMALL_SPLIT else NUM_WORKERS
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(_Resized(dataset, size), indices.tolist()), batch_size=DECODE_BATCH,
        num_workers=workers, shuffle=False)
    return write_cache(stem, (x for x, _ in loader), (len(labels), 3, size, size), labels, note, meta.class_names)


def _with_class_names(static: DatasetInfo, dataset: Any) -> DatasetInfo:
    """Readable class names from the data when it has them (else the static ones)."""
    classes = getattr(dataset, "classes", None)
    if not classes or len(classes) != static.num_classes:
        return static
    return dataclasses.replace(static, class_names=tuple(readable(str(c)) for c in classes))
