"""Synthetic paper datasets in torchvision's exact on-disk formats.

`write_synthetic_dataset(name, root, ...)` takes reprolib's data root (the `root` of
`reprolib.data.get_dataset`) and writes into `root/<name>/`, the folder reprolib hands to
the torchvision class (reprolib.data.paper._construct). Layouts follow torchvision 0.29:

| name         | torchvision class | written under root/<name>/                                            | md5 check -> bypassed?  |
|--------------|-------------------|-----------------------------------------------------------------------|-------------------------|
| cifar10      | CIFAR10           | cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta (pickle) | yes: every file -> yes  |
| cifar100     | CIFAR100          | cifar-100-python/train, test, meta (pickle; fine + coarse labels)      | yes: every file -> yes  |
| svhn         | SVHN              | train_32x32.mat, test_32x32.mat (X: 32x32x3xN uint8, y: Nx1, 0 as 10)  | yes: the .mat -> yes    |
| gtsrb        | GTSRB             | gtsrb/GTSRB/Training/000cc/*.ppm (+GT-000cc.csv), gtsrb/GTSRB/Final_Test/Images/*.ppm, gtsrb/GT-final_test.csv | no (folder exists) |
| flowers102   | Flowers102        | flowers-102/jpg/image_NNNNN.jpg, imagelabels.mat, setid.mat (1-based)  | yes: both .mat -> yes   |
| dtd          | DTD               | dtd/dtd/images/<cls>/*.jpg, dtd/dtd/labels/{train,val,test}1.txt       | no (folder exists)      |
| oxfordpets   | OxfordIIITPet     | oxford-iiit-pet/images/<Breed>_<k>.jpg, annotations/{trainval,test}.txt | no (folders exist)     |
| eurosat      | EuroSAT           | eurosat/2750/<ClassName>/<ClassName>_<k>.jpg (the 10 real folder names) | no (folder exists)     |
| food101      | Food101           | food-101/images/<cls>/<id>.jpg, food-101/meta/{train,test}.json, classes.txt | no (folders exist) |
| sun397       | SUN397            | SUN397/ClassName.txt ("/s/<cls>"), SUN397/s/<cls>/sun_<id>.jpg          | no (folder exists)     |
| stanfordcars | StanfordCars      | stanford_cars/devkit/{cars_meta,cars_train_annos}.mat, cars_test_annos_withlabels.mat, cars_train/, cars_test/ | no (files exist) |

CIFAR/SVHN/Flowers102 verify the md5 of files that only the real download can match, so
reading those three needs `reprolib.dryrun.integrity_checks_bypassed()` (see integrity.py).

Counts: `n_per_class_train` / `n_per_class_test` images per class in the official train
(Pets: trainval) / test split. Flowers102 and DTD also get a 1-per-class "val" split
(unused by reprolib). EuroSAT and SUN397 have no split in torchvision: reprolib makes a
seeded stratified 80/20 one, so they get one pool of max(n_train + n_test, 5) images per
class (5 keeps every class in reprolib's 20% test side). Class counts default to the real
ones; `num_classes` may ask for fewer (the class list written then has that many entries,
except Flowers102 whose 102 names are hard-coded in torchvision). Class names are the
registry's real ones where reprolib has them (CIFAR-10, EuroSAT folders), torchvision's
for Flowers102, and "synthetic_NNN"-style names otherwise.

Image sizes: CIFAR and SVHN are 32 x 32 by format. Variable-size sets default to a side
of 40 (GTSRB) or 64 (others); to exercise reprolib's resize path their width varies
(side, side + 8, side + 16) around `image_size`.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Callable

import numpy as np

from reprolib.data.catalog import CIFAR10_CLASSES
from reprolib.dryrun.synth import ImageMaker, dataset_seed, save_image
from reprolib.errors import ReprolibError, check_choice
from reprolib.records import atomic_write

# name -> (real number of classes, default image side, fixed size?)
SPECS: dict[str, tuple[int, int, bool]] = {
    "cifar10": (10, 32, True), "cifar100": (100, 32, True), "svhn": (10, 32, True),
    "gtsrb": (43, 40, False), "flowers102": (102, 64, False), "dtd": (47, 64, False),
    "oxfordpets": (37, 64, False), "eurosat": (10, 64, False), "food101": (101, 64, False),
    "sun397": (397, 64, False), "stanfordcars": (196, 64, False),
}
NEEDS_BYPASS = ("cifar10", "cifar100", "svhn", "flowers102")
MARKER = ".dryrun.json"   # written last into root/<name>/: the set is complete
PARTIAL = ".dryrun.partial"   # written first: a folder with only this one is our interrupted write
EUROSAT_FOLDERS = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
                   "Pasture", "PermanentCrop", "Residential", "River", "SeaLake")
UNSPLIT_MIN_PER_CLASS = 5


def dataset_names() -> list[str]:
    return list(SPECS)


class _Writer:
    """State shared by one dataset's writer: counts, sizes, the image maker, a shuffler."""

    def __init__(self, name: str, folder: Path, n_train: int, n_test: int, k: int, side: int, seed: int,
                 side_range: tuple[int, int] | None = None):
        """Many parameters because the writer carries every fact of one dataset's write."""
        self.name, self.folder, self.n_train, self.n_test, self.k, self.side = name, folder, n_train, n_test, k, side
        self.side_range = side_range
        self.maker = ImageMaker(name, k, seed)
        self.rng = np.random.default_rng([dataset_seed(seed, name), 7])
        self._count = 0

    def labels(self, per_class: int) -> list[int]:
        """Class labels, per_class each, in a seeded shuffled order (real files are not sorted)."""
        labels = np.repeat(np.arange(self.k), per_class)
        return self.rng.permutation(labels).tolist()

    def pixels(self, label: int) -> np.ndarray:
        self._count += 1
        if self.side_range is not None:   # log-normal sides around the range's geometric middle, clipped
            lo, hi = self.side_range
            side = int(np.clip(np.exp(self.rng.normal(np.log(np.sqrt(lo * hi)), 0.45)), lo, hi))
            return self.maker.image(label, (side, side + int(self.rng.integers(0, 1 + side // 10))))
        return self.maker.image(label, (self.side, self.side + 8 * (self._count % 3)))

    def save(self, path: Path, label: int, fmt: str = "JPEG") -> None:
        save_image(path, self.pixels(label), fmt)


def _pickle(path: Path, obj: object) -> None:
    atomic_write(path, lambda f: pickle.dump(obj, f, protocol=2))


_MAT_DESCRIPTION = b"MATLAB 5.0 MAT-file, written by reprolib.dryrun"


def _savemat(path: Path, mdict: dict) -> None:
    """A MATLAB 5 file, byte-identical for identical data.

    scipy stamps `time.asctime()` into the 116-byte text at the head of the file, so two
    writes a second apart differed; the text is replaced by a fixed one (readers ignore it).
    """
    import io

    from scipy.io import savemat   # only the .mat-based sets need scipy

    buffer = io.BytesIO()
    savemat(buffer, mdict)
    data = bytearray(buffer.getvalue())
    data[:116] = _MAT_DESCRIPTION.ljust(116, b" ")
    atomic_write(path, lambda f: f.write(bytes(data)))


def _text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), "w")


def _cifar_rows(w: _Writer, labels: list[int]) -> np.ndarray:
    """N x 3072 uint8, each row R(1024) G(1024) B(1024) of a row-major 32 x 32 image."""
    rows = [w.maker.image(c, 32).transpose(2, 0, 1).reshape(-1) for c in labels]
    return np.stack(rows) if rows else np.zeros((0, 3072), np.uint8)


def _cifar10(w: _Writer) -> None:
    base = w.folder / "cifar-10-batches-py"
    train = w.labels(w.n_train)
    for i, part in enumerate(np.array_split(np.arange(len(train)), 5), 1):
        labels = [train[j] for j in part]
        _pickle(base / f"data_batch_{i}", {"batch_label": f"training batch {i} of 5", "labels": labels,
                                           "data": _cifar_rows(w, labels),
                                           "filenames": [f"synthetic_{j}.png" for j in part]})
    test = w.labels(w.n_test)
    _pickle(base / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": test,
                                  "data": _cifar_rows(w, test), "filenames": [f"synthetic_t{j}.png" for j in range(len(test))]})
    _pickle(base / "batches.meta", {"label_names": list(CIFAR10_CLASSES[:w.k]), "num_cases_per_batch": 10000,
                                    "num_vis": 3072})


def _cifar100(w: _Writer) -> None:
    base = w.folder / "cifar-100-python"
    for split, per_class in (("train", w.n_train), ("test", w.n_test)):
        fine = w.labels(per_class)
        _pickle(base / split, {"filenames": [f"synthetic_{split}_{j}.png" for j in range(len(fine))],
                               "batch_label": f"{split}ing batch 1 of 1", "fine_labels": fine,
                               "coarse_labels": [c // 5 for c in fine], "data": _cifar_rows(w, fine)})
    _pickle(base / "meta", {"fine_label_names": [f"synthetic_{c:03d}" for c in range(w.k)],
                            "coarse_label_names": [f"synthetic_super_{c:02d}" for c in range((w.k + 4) // 5)]})


def _svhn(w: _Writer) -> None:
    for split, per_class in (("train", w.n_train), ("test", w.n_test)):
        labels = w.labels(per_class)
        images = [w.maker.image(c, 32) for c in labels]
        x = np.stack(images, axis=-1) if images else np.zeros((32, 32, 3, 0), np.uint8)   # H x W x C x N
        y = np.array([[10 if c == 0 else c] for c in labels], dtype=np.uint8)              # digit 0 is stored as 10
        _savemat(w.folder / f"{split}_32x32.mat", {"X": x, "y": y})


def _gtsrb(w: _Writer) -> None:
    base = w.folder / "gtsrb"
    header = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"
    counts = [0] * w.k
    for c in w.labels(w.n_train):
        folder = base / "GTSRB" / "Training" / f"{c:05d}"
        name = f"{counts[c] // 30:05d}_{counts[c] % 30:05d}.ppm"
        counts[c] += 1
        w.save(folder / name, c, "PPM")
    for c in range(w.k):   # torchvision reads only the .ppm files; the real folders also hold this csv
        rows = [f"{i // 30:05d}_{i % 30:05d}.ppm;{w.side};{w.side};5;5;{w.side - 5};{w.side - 5};{c}"
                for i in range(counts[c])]
        _text(base / "GTSRB" / "Training" / f"{c:05d}" / f"GT-{c:05d}.csv", header + "".join(r + "\n" for r in rows))
    rows = []
    for i, c in enumerate(w.labels(w.n_test)):
        name = f"{i:05d}.ppm"
        w.save(base / "GTSRB" / "Final_Test" / "Images" / name, c, "PPM")
        rows.append(f"{name};{w.side};{w.side};5;5;{w.side - 5};{w.side - 5};{c}\n")
    (base / "GTSRB" / "Final_Test" / "Images").mkdir(parents=True, exist_ok=True)
    _text(base / "GT-final_test.csv", header + "".join(rows))


def _flowers102(w: _Writer) -> None:
    base = w.folder / "flowers-102"
    labels, ids = [], {}
    for split, per_class in (("trnid", w.n_train), ("valid", 1), ("tstid", w.n_test)):
        split_labels = w.labels(per_class)
        ids[split] = np.arange(len(labels) + 1, len(labels) + len(split_labels) + 1, dtype=np.uint16)
        labels += split_labels
    for image_id, c in enumerate(labels, 1):
        w.save(base / "jpg" / f"image_{image_id:05d}.jpg", c)
    (base / "jpg").mkdir(parents=True, exist_ok=True)
    _savemat(base / "imagelabels.mat", {"labels": np.array([[c + 1 for c in labels]], dtype=np.uint8)})
    _savemat(base / "setid.mat", {k: v[None, :] for k, v in ids.items()})


def _dtd(w: _Writer) -> None:
    data = w.folder / "dtd" / "dtd"
    classes = [f"texture{c:02d}" for c in range(w.k)]
    for split, per_class in (("train", w.n_train), ("val", 1), ("test", w.n_test)):
        lines = []
        for c in w.labels(per_class):
            name = f"{classes[c]}_{split}_{len(lines):04d}.jpg"
            w.save(data / "images" / classes[c] / name, c)
            lines.append(f"{classes[c]}/{name}\n")
        _text(data / "labels" / f"{split}1.txt", "".join(lines))


def _oxfordpets(w: _Writer) -> None:
    base = w.folder / "oxford-iiit-pet"
    # Real ids: cat breeds capitalised ("Abyssinian_12"), dog breeds lower case; 12 cat breeds.
    breeds = [f"Catbreed{c:02d}" if c < 12 else f"dog_breed_{c:02d}" for c in range(w.k)]
    number = [0] * w.k
    for split, per_class in (("trainval", w.n_train), ("test", w.n_test)):
        lines = []
        for c in w.labels(per_class):
            number[c] += 1
            image_id = f"{breeds[c]}_{number[c]}"
            w.save(base / "images" / f"{image_id}.jpg", c)
            species = 1 if c < 12 else 2
            lines.append(f"{image_id} {c + 1} {species} {c + 1 if c < 12 else c - 11}\n")
        _text(base / "annotations" / f"{split}.txt", "".join(lines))


def _unsplit_per_class(w: _Writer) -> int:
    return max(w.n_train + w.n_test, UNSPLIT_MIN_PER_CLASS)


def _eurosat(w: _Writer) -> None:
    data = w.folder / "eurosat" / "2750"
    for i, c in enumerate(w.labels(_unsplit_per_class(w))):
        w.save(data / EUROSAT_FOLDERS[c] / f"{EUROSAT_FOLDERS[c]}_{i + 1}.jpg", c)


def _food101(w: _Writer) -> None:
    base = w.folder / "food-101"
    classes = [f"dish_{c:03d}" for c in range(w.k)]
    image_id = 100000
    for split, per_class in (("train", w.n_train), ("test", w.n_test)):
        meta: dict[str, list[str]] = {cls: [] for cls in classes}
        for c in w.labels(per_class):
            image_id += 1
            w.save(base / "images" / classes[c] / f"{image_id}.jpg", c)
            meta[classes[c]].append(f"{classes[c]}/{image_id}")
        _text(base / "meta" / f"{split}.json", json.dumps(meta))
        _text(base / "meta" / f"{split}.txt", "".join(p + "\n" for ps in meta.values() for p in ps))
    _text(base / "meta" / "classes.txt", "".join(c + "\n" for c in classes))


def _sun397(w: _Writer) -> None:
    data = w.folder / "SUN397"
    classes = [f"scene_{c:03d}" for c in range(w.k)]   # all start with "s", as "/a/abbey" starts with "a"
    for i, c in enumerate(w.labels(_unsplit_per_class(w))):
        w.save(data / "s" / classes[c] / f"sun_{i:08d}.jpg", c)
    _text(data / "ClassName.txt", "".join(f"/s/{cls}\n" for cls in classes))


def _stanfordcars(w: _Writer) -> None:
    base = w.folder / "stanford_cars"
    fields = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")]
    for split, per_class, mat in (("train", w.n_train, base / "devkit" / "cars_train_annos.mat"),
                                  ("test", w.n_test, base / "cars_test_annos_withlabels.mat")):
        records = []
        for i, c in enumerate(w.labels(per_class), 1):
            fname = f"{i:05d}.jpg"
            w.save(base / f"cars_{split}" / fname, c)
            records.append((np.uint8(2), np.uint8(2), np.uint16(w.side - 2), np.uint16(w.side - 2),
                            np.uint8(c + 1), fname))
        (base / f"cars_{split}").mkdir(parents=True, exist_ok=True)
        _savemat(mat, {"annotations": np.array([records], dtype=fields)})
    names = np.empty((1, w.k), dtype=object)
    names[0, :] = [f"Synthetic Make {c:03d} Sedan 2012" for c in range(w.k)]
    _savemat(base / "devkit" / "cars_meta.mat", {"class_names": names})


_WRITERS: dict[str, Callable[[_Writer], None]] = {
    "cifar10": _cifar10, "cifar100": _cifar100, "svhn": _svhn, "gtsrb": _gtsrb, "flowers102": _flowers102,
    "dtd": _dtd, "oxfordpets": _oxfordpets, "eurosat": _eurosat, "food101": _food101, "sun397": _sun397,
    "stanfordcars": _stanfordcars,
}


def write_synthetic_dataset(name: str, root: str | Path, n_per_class_train: int = 2, n_per_class_test: int = 2,
                            num_classes: int | None = None, seed: int = 0, image_size: int | None = None,
                            side_range: tuple[int, int] | None = None) -> dict:
    """Write synthetic `name` under reprolib data root `root` (into root/<name>/).

    Many parameters because each is one fact of the written set (recorded in its marker).
    Long because it checks every argument before writing anything.

    `side_range` (lo, hi), for a variable-size set: image sides drawn log-normally around
    sqrt(lo * hi), clipped to [lo, hi] (e.g. GTSRB's real 15-250 px, for benchmarks at its
    real spread of sizes); by default sides cycle through image_size + 0 / 8 / 16.

    Idempotent: a set whose marker root/<name>/.dryrun.json records the same arguments is
    skipped; an interrupted earlier write (root/<name>/.dryrun.partial only) is deleted and
    redone; different arguments, or a non-empty root/<name> with neither marker (real
    data?), raise a ReprolibError rather than overwrite. Returns the marker's record plus
    "status": "written" | "exists".
    """
    check_choice("dry-run dataset", name, SPECS)
    real_k, default_side, fixed = SPECS[name]
    k = real_k if num_classes is None else int(num_classes)
    if not 1 <= k <= real_k:
        raise ReprolibError(f"num_classes for {name} must be in 1..{real_k}, got {num_classes!r}")
    if int(n_per_class_train) < 1 or int(n_per_class_test) < 1:
        raise ReprolibError(f"n_per_class_train and n_per_class_test must be >= 1, "
                            f"got {n_per_class_train!r}, {n_per_class_test!r}")
    side = default_side if image_size is None else int(image_size)
    if fixed and side != default_side:
        raise ReprolibError(f"{name} images are {default_side} x {default_side} by format; got image_size={image_size}")
    if side < 16:
        raise ReprolibError(f"image_size must be >= 16, got {image_size}")
    folder = Path(root).expanduser() / name
    record = {"dataset": name, "n_per_class_train": int(n_per_class_train), "n_per_class_test": int(n_per_class_test),
              "num_classes": k, "seed": int(seed), "image_size": side, "bypass_needed": name in NEEDS_BYPASS}
    if side_range is not None:
        if fixed:
            raise ReprolibError(f"{name} images are {default_side} x {default_side} by format; side_range does not apply")
        record["side_range"] = [int(side_range[0]), int(side_range[1])]
    marker = folder / MARKER
    if marker.is_file():
        previous = json.loads(marker.read_text())
        if previous != record:
            raise ReprolibError(f"{folder} holds a dry-run {name} written with {previous}; delete it to write {record}")
        return {**record, "status": "exists"}
    if (folder / PARTIAL).is_file():
        import shutil

        shutil.rmtree(folder)
    if folder.exists() and any(folder.iterdir()):
        raise ReprolibError(f"{folder} exists and is not a complete dry-run set (no {MARKER}); "
                            f"refusing to write into it (real data or an interrupted write: delete it first)")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PARTIAL).write_text("dry-run write in progress\n")
    _WRITERS[name](_Writer(name, folder, int(n_per_class_train), int(n_per_class_test), k, side, int(seed),
                           None if side_range is None else (int(side_range[0]), int(side_range[1]))))
    _text(marker, json.dumps(record, indent=1, sort_keys=True))
    (folder / PARTIAL).unlink()
    return {**record, "status": "written"}
