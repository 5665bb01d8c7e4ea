"""Static facts about every dataset: `DatasetInfo`, `info(name)`, `names(kind)`.

This module imports no loader (and no torch): the loaders import `info` from here, and
`reprolib.data.registry.get_dataset` calls the reader an entry names in `DatasetInfo.loader`
("module:function", imported when first read). Adding a dataset is one `_INFOS` entry (plus its
reader's module when no existing reader reads its files).

Embedded targets (offline): fashion_mnist (the upstream source), digits, glyphs.
Paper targets (torchvision downloaders, internet): cifar10, cifar100, svhn, gtsrb,
flowers102, dtd, oxfordpets, eurosat, food101, sun397, stanfordcars.

`prompt_size` is the side the padding prompt places the image at (docs/methods.md s.1:
32 for CIFAR-10/100, SVHN, GTSRB; 128 for the other paper sets; 20 for the embedded
targets on the 28 px backbone; 28 for Fashion-MNIST, the source set itself).

`image_size` is the side of the images `get_dataset` serves by default: the native size for
the embedded sets (28, 8); paper sets are served at their prompt_size by default (VP's copy,
as the ILM-VP pipeline), so image_size == prompt_size. A caller may ask a paper set for
another side (`get_dataset(..., size=224)`: LP, SMM and the watermark prompts take the
original image resized once to the backbone's input; docs/methods.md s.4); `native_size`
(the side every original image of the set already has, None when it varies) lets a set whose
originals are smaller than the requested side be served unresized, so the network's own
resize is the only one (and 50,000 CIFAR images are not stored at 224).

Class names: `info(name)` is static and never touches the disk. For paper sets whose
names ship inside the downloaded data (cifar100, flowers102, dtd, oxfordpets, food101,
sun397, stanfordcars) it holds placeholders "class 0", ...; the ImageSplit returned by
`get_dataset` carries the readable names read from the data (`split.info.class_names`).
"""

from __future__ import annotations

from dataclasses import dataclass

from reprolib.errors import check_choice, check_type

KINDS = ("embedded", "paper")
# The torchvision sets' reader (reprolib.data.paper), the paper entries' `loader`.
TORCHVISION = "reprolib.data.paper:load_paper"


@dataclass(frozen=True)
class SplitSizes:
    """Train / test image counts of a dataset and the smallest class of its training split.

    `min_per_class` is a documented minimum when one is known; otherwise an upper bound on it
    (floor(train / classes): the smallest class is never above the mean), flagged by `bound`.
    Exact for the balanced Flowers102 (10) and DTD (40) splits; the others' minimums were
    entered from the datasets' descriptions without a check against the data here (no
    internet): they only decide which few-shot cells `sweep --dry-run` flags as capped, and
    all of them lie above the paper grid's largest n_shot (100).
    """

    train: int
    test: int
    min_per_class: int
    bound: bool = False
    note: str = ""


@dataclass(frozen=True)
class DatasetInfo:
    """What a transfer method needs to know about a dataset before seeing an image."""

    name: str
    num_classes: int
    class_names: tuple[str, ...]   # readable, for captions like "a photo of a {class}"
    image_size: int                # side of the images served (see module docstring)
    channels: int
    prompt_size: int               # side the padding prompt places the image at
    kind: str                      # "embedded" | "paper"
    # Does a horizontal flip keep the label? Not for digits and letters (augmentation skips it).
    mirror_safe: bool = True
    # The papers halve the training batch for this set (ILM-VP / SMM: DTD, OxfordPets).
    small_batch: bool = False
    # Other registered sets whose test images are semantic-shift OOD data for this one, in
    # scoring order (the Reprogrammer study, and the transfer runs' OOD scores for embedded
    # targets); a paper partner counts only when it is already on disk. Named by this entry
    # alone: registering another set changes no entry's partners.
    ood_partners: tuple[str, ...] = ()
    # The reader get_dataset calls, "module:function" with the signature
    # (name, split, root, download, size) -> ImageSplit (reprolib.data.registry.reader).
    loader: str = TORCHVISION
    # Side of every original image when the set has one fixed size (CIFAR 32, SVHN 32,
    # EuroSAT 64); None when the originals vary (GTSRB, Flowers102, DTD, ...).
    native_size: int | None = None
    # The real dataset's split sizes as reprolib's loaders serve them (paper sets; None for the
    # embedded sets, whose counts are read from the data). Used to size a sweep before running it.
    sizes: SplitSizes | None = None
    # (method, batch) pairs: RLT's test loader for that method on this set used another batch
    # than every other (docs/methods.md s.9; VP on OxfordPets: 64), which its legacy "ECE"
    # depends on. protocols.RLT_LEGACY_ECE_EXCEPTIONS collects them.
    legacy_ece_batches: tuple[tuple[str, int], ...] = ()

    def served_side(self, size: int | None) -> int:
        """The side `get_dataset(name, split, size=size)` serves (see the module docstring).

        None or the prompt size: the prompt-size copy (unchanged default). A larger side: the
        native side when every original is at most that big (served unresized), else `size`.
        """
        if size is None or size == self.prompt_size:
            return self.prompt_size
        if self.native_size is not None and self.native_size <= size:
            return self.native_size
        return size


FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# Digit names stay "0".."9": captions then read "a photo of a 0"; a caption builder that
# wants words can map them itself. Kept as digits so labels and names agree at a glance.
DIGIT_CLASSES = tuple(str(d) for d in range(10))
GLYPH_CLASSES = tuple("ABCDEFGHIJ")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
# torchvision's EuroSAT folder order (sorted folder names), written as words.
EUROSAT_CLASSES = ("annual crop", "forest", "herbaceous vegetation", "highway", "industrial",
                   "pasture", "permanent crop", "residential", "river", "sea lake")
# The GTSRB benchmark's sign names (label order 0..42); torchvision ships none.
GTSRB_CLASSES = (
    "speed limit 20 km/h", "speed limit 30 km/h", "speed limit 50 km/h", "speed limit 60 km/h",
    "speed limit 70 km/h", "speed limit 80 km/h", "end of speed limit 80 km/h",
    "speed limit 100 km/h", "speed limit 120 km/h", "no passing",
    "no passing for vehicles over 3.5 tons", "right-of-way at the next intersection",
    "priority road", "yield", "stop", "no vehicles", "vehicles over 3.5 tons prohibited",
    "no entry", "general caution", "dangerous curve to the left", "dangerous curve to the right",
    "double curve", "bumpy road", "slippery road", "road narrows on the right", "road work",
    "traffic signals", "pedestrians", "children crossing", "bicycles crossing",
    "beware of ice or snow", "wild animals crossing", "end of all speed and passing limits",
    "turn right ahead", "turn left ahead", "ahead only", "go straight or right",
    "go straight or left", "keep right", "keep left", "roundabout mandatory",
    "end of no passing", "end of no passing by vehicles over 3.5 tons",
)


def _placeholders(n: int) -> tuple[str, ...]:
    return tuple(f"class {i}" for i in range(n))


def _paper(name: str, classes: tuple[str, ...], size: int, **facts) -> DatasetInfo:
    return DatasetInfo(name, len(classes), classes, size, 3, size, "paper", loader=TORCHVISION, **facts)


_INFOS: dict[str, DatasetInfo] = {
    "fashion_mnist": DatasetInfo("fashion_mnist", 10, FASHION_MNIST_CLASSES, 28, 1, 28, "embedded",
                                 ood_partners=("digits", "glyphs"), loader="reprolib.data.embedded:read_fashion_mnist"),
    "digits": DatasetInfo("digits", 10, DIGIT_CLASSES, 8, 1, 20, "embedded", mirror_safe=False,
                          ood_partners=("fashion_mnist", "glyphs"), loader="reprolib.data.embedded:read_digits"),
    "glyphs": DatasetInfo("glyphs", 10, GLYPH_CLASSES, 28, 1, 20, "embedded", mirror_safe=False,
                          ood_partners=("fashion_mnist", "digits"), loader="reprolib.data.glyphs:read_glyphs"),
    "cifar10": _paper("cifar10", CIFAR10_CLASSES, 32, ood_partners=("svhn", "dtd"), native_size=32,
              sizes=SplitSizes(50_000, 10_000, 5_000)),
    "cifar100": _paper("cifar100", _placeholders(100), 32, native_size=32,
              sizes=SplitSizes(50_000, 10_000, 500)),
    "svhn": _paper("svhn", DIGIT_CLASSES, 32, mirror_safe=False, native_size=32,
              sizes=SplitSizes(73_257, 26_032, 4_659, note="smallest train class: digit 9")),
    "gtsrb": _paper("gtsrb", GTSRB_CLASSES, 32,
              sizes=SplitSizes(26_640, 12_630, 150, note="torchvision's train split; smallest classes 150")),
    "flowers102": _paper("flowers102", _placeholders(102), 128,
              sizes=SplitSizes(1_020, 6_149, 10, note="10 train images per class")),
    "dtd": _paper("dtd", _placeholders(47), 128, small_batch=True,
              sizes=SplitSizes(1_880, 1_880, 40, note="partition 1: 40 train images per class")),
    "oxfordpets": _paper("oxfordpets", _placeholders(37), 128, small_batch=True, legacy_ece_batches=(("vp", 64),),
              sizes=SplitSizes(3_680, 3_669, 3_680 // 37, bound=True,
                                note="trainval 3,680 < 37 x 100: some class has at most 99")),
    "eurosat": _paper("eurosat", EUROSAT_CLASSES, 128, native_size=64,
              sizes=SplitSizes(21_600, 5_400, 1_600, note="80/20 of 27,000; smallest class 2,000")),
    "food101": _paper("food101", _placeholders(101), 128,
              sizes=SplitSizes(75_750, 25_250, 750)),
    "sun397": _paper("sun397", _placeholders(397), 128,
              sizes=SplitSizes(87_003, 21_751, 80, note="80/20 of 108,754; classes of >= 100 images")),
    "stanfordcars": _paper("stanfordcars", _placeholders(196), 128,
              sizes=SplitSizes(8_144, 8_041, 24, note="smallest train class 24")),
}


def names(kind: str | None = None) -> list[str]:
    """Registered dataset names (embedded first), optionally only one kind."""
    if kind is not None:
        check_choice("dataset kind", kind, KINDS)
    return [n for n, i in _INFOS.items() if kind is None or i.kind == kind]


def info(name: str) -> DatasetInfo:
    """Static facts about dataset `name` (no disk access; see module docstring on names)."""
    check_type("dataset name", name, str)
    check_choice("dataset", name, _INFOS)
    return _INFOS[name]
