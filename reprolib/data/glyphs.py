"""glyphs: a notMNIST-style target made offline from the fonts on this machine.

Letters A-J (10 classes) are rendered with FreeType (matplotlib's FT2Font) from every
usable font: matplotlib's bundled fonts (mpl-data/fonts/ttf: DejaVu, STIX, Computer
Modern), plus Debian's DejaVu fonts (packages fonts-dejavu-core and fonts-dejavu-extra,
under SYSTEM_FONT_DIRS; `make data` installs them when it runs as root) when
USE_SYSTEM_FONTS is true. Fonts
are deduplicated by (family, style); a font is usable when it maps all ten letters to
distinct, non-blank glyphs (this drops symbol fonts such as cmex10 and fallback fonts).

Each glyph is cropped to its ink, scaled to fit a 22 px box (aspect kept), centred on a
28x28 grey canvas (rendered at 4x and area-downsampled), and drawn COPIES_PER_FONT times
with a small seeded affine jitter (rotation +-12 deg, scale 0.85-1.1, shift +-2 px). The
jitter generator of each font is seeded from (SEED, font name), so adding or removing a
font never changes another font's images.

Split BY FONT: a seeded permutation (SEED) of the sorted font names puts TEST_FRACTION of
the fonts in test; test fonts never appear in train. Which fonts are test is written in
`split_note` (and in the cache file). Styles of one family (e.g. DejaVu Sans and DejaVu
Sans Bold) count as different fonts, so a test font may share its design with a train font.
On the reference machine (matplotlib 3.11 fonts + Debian fonts-dejavu: 33 fonts, 3,960
images, 3,000 train / 960 test) the test fonts are: DejaVu Math TeX Gyre Regular, DejaVu
Sans Book, DejaVu Serif Book, DejaVu Serif Condensed, cmr10, cmsy10 (calligraphic
capitals), cmti10, cmtt10 (all Regular).

Only the DejaVu folder is read, not every system font: the set must not depend on what else
a machine has installed (Debian's chromium, for one, brings the Liberation fonts, which
turned the 33-font set into 49 fonts and changed every glyphs number). Without the Debian
fonts the set is matplotlib's alone and smaller; the cache file name carries a hash of the
font set and parameters, so the two sets never mix. USE_SYSTEM_FONTS = False gives a set
that depends only on the pinned matplotlib version. Built once and cached (atomically)
under root.
"""

from __future__ import annotations

import functools
import hashlib
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from reprolib.data.catalog import info
from reprolib.data.split import ImageSplit
from reprolib.models.weights import load_weights
from reprolib.records import atomic_torch_save
from reprolib.errors import ReprolibError

GLYPHS_VERSION = 1
LETTERS = "ABCDEFGHIJ"
COPIES_PER_FONT = 12
TEST_FRACTION = 0.25
SEED = 0
IMAGE_SIZE = 28
SUPERSAMPLE = 4            # render and jitter at 4x, then average-pool: smooth edges
GLYPH_BOX = 22             # longest side of the glyph on the 28 px canvas, before jitter
MAX_ROTATION_DEG = 12.0
SCALE_RANGE = (0.85, 1.10)
MAX_SHIFT_PX = 2.0
USE_SYSTEM_FONTS = True
# Debian's fonts-dejavu-core + fonts-dejavu-extra; nothing else, so other packages' fonts never enter.
SYSTEM_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu",)
# Families whose A-J code points hold no letters (or a placeholder box).
EXCLUDED_FAMILIES = frozenset({"cmex10", "Last Resort High-Efficiency", "Last Resort"})


@dataclass(frozen=True)
class Font:
    path: str
    family: str
    style: str
    size_bytes: int

    @property
    def name(self) -> str:
        return f"{self.family} {self.style}"


def _font_files(system: bool) -> list[Path]:
    import matplotlib

    files = sorted((Path(matplotlib.get_data_path()) / "fonts" / "ttf").glob("*.ttf"))
    if system:
        for directory in SYSTEM_FONT_DIRS:
            base = Path(directory).expanduser()
            if base.is_dir():
                files += sorted(p for p in base.rglob("*") if p.suffix.lower() in (".ttf", ".otf"))
    return files


def _render_ink(path: str, letter: str, size_px: int) -> np.ndarray:
    """The letter's anti-aliased bitmap in [0, 1], cropped to its ink (empty if none)."""
    from matplotlib.ft2font import FT2Font

    font = FT2Font(path)
    font.set_size(size_px, 72)  # 72 dpi: points == pixels
    font.set_text(letter, 0.0)
    font.draw_glyphs_to_bitmap(antialiased=True)
    bitmap = np.asarray(font.get_image(), dtype=np.float32) / 255.0
    rows, cols = np.nonzero(bitmap > 0.05)
    if len(rows) == 0:
        return np.zeros((0, 0), np.float32)
    return bitmap[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]


def _usable(path: str) -> bool:
    """All ten letters present, non-blank and pairwise distinct (a cheap 32 px check)."""
    from matplotlib.ft2font import FT2Font

    font = FT2Font(path)
    if not all(font.get_char_index(ord(c)) for c in LETTERS):
        return False
    inks = [_render_ink(path, c, 32) for c in LETTERS]
    if any(ink.size == 0 or ink.max() < 0.5 for ink in inks):
        return False
    keys = {(ink.shape, ink.round(2).tobytes()) for ink in inks}
    return len(keys) == len(LETTERS)


@functools.lru_cache(maxsize=4)
def find_fonts(system: bool | None = None) -> tuple[Font, ...]:
    """Usable fonts, deduplicated by (family, style) (first found wins), sorted by name."""
    from matplotlib.ft2font import FT2Font

    system = USE_SYSTEM_FONTS if system is None else system
    seen: dict[tuple[str, str], Font] = {}
    for path in _font_files(system):
        try:
            font = FT2Font(str(path))
        except Exception:  # unreadable or unsupported font file: not ours to fix
            continue
        key = (font.family_name, font.style_name)
        if key in seen or font.family_name in EXCLUDED_FAMILIES or not _usable(str(path)):
            continue
        seen[key] = Font(str(path), font.family_name, font.style_name, path.stat().st_size)
    return tuple(sorted(seen.values(), key=lambda f: f.name))


def split_fonts(fonts: tuple[Font, ...], seed: int = SEED) -> tuple[list[str], list[str]]:
    """(train font names, test font names): a seeded permutation, TEST_FRACTION to test."""
    names_sorted = sorted(f.name for f in fonts)
    if len(names_sorted) < 2:
        raise ReprolibError(f"glyphs needs at least 2 usable fonts, found {len(names_sorted)}; install any TrueType fonts")
    n_test = min(len(names_sorted) - 1, max(1, round(TEST_FRACTION * len(names_sorted))))
    perm = torch.randperm(len(names_sorted), generator=torch.Generator().manual_seed(seed)).tolist()
    test = sorted(names_sorted[i] for i in perm[:n_test])
    return [n for n in names_sorted if n not in test], test


def _canvas(ink: np.ndarray) -> torch.Tensor:
    """Scale the ink to fit the glyph box (aspect kept) and centre it on a 4x canvas."""
    side, box = IMAGE_SIZE * SUPERSAMPLE, GLYPH_BOX * SUPERSAMPLE
    h, w = ink.shape
    scale = box / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    glyph = F.interpolate(torch.from_numpy(ink)[None, None], size=(nh, nw), mode="bilinear",
                          antialias=True, align_corners=False)[0, 0]
    canvas = torch.zeros(side, side)
    top, left = (side - nh) // 2, (side - nw) // 2
    canvas[top:top + nh, left:left + nw] = glyph.clamp(0, 1)
    return canvas


def _jitter(canvases: torch.Tensor, copies: int, generator: torch.Generator) -> torch.Tensor:
    """`copies` seeded affine variants of each (L, S, S) canvas -> (L * copies, 28, 28)."""
    n = len(canvases) * copies
    src = canvases.repeat_interleave(copies, dim=0)[:, None]
    u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
    angle = (2 * u[:, 0] - 1) * math.radians(MAX_ROTATION_DEG)
    scale = SCALE_RANGE[0] + u[:, 1] * (SCALE_RANGE[1] - SCALE_RANGE[0])
    shift = (2 * u[:, 2:] - 1) * MAX_SHIFT_PX * 2 / IMAGE_SIZE  # pixels -> normalised coordinates
    # affine_grid maps output coordinates to input ones: the inverse of rotate-scale-shift.
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    inv = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], 1)  # (n, 2, 2)
    offset = -(inv @ shift[:, :, None])
    theta = torch.cat([inv, offset], dim=2).to(torch.float32)
    grid = F.affine_grid(theta, list(src.shape), align_corners=False)
    moved = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return F.avg_pool2d(moved, SUPERSAMPLE)[:, 0].clamp(0, 1)


def build_glyphs(fonts: tuple[Font, ...], copies: int = COPIES_PER_FONT, seed: int = SEED) -> dict[str, Any]:
    """Render every font's A-J with jitter; returns the cache dict (uint8 images)."""
    train_fonts, test_fonts = split_fonts(fonts, seed)
    images, labels, font_ids = [], [], []
    for font_id, font in enumerate(sorted(fonts, key=lambda f: f.name)):
        canvases = torch.stack([_canvas(_render_ink(font.path, c, 24 * SUPERSAMPLE)) for c in LETTERS])
        font_seed = (seed * 1_000_003 + zlib.crc32(font.name.encode())) % 2**63
        generator = torch.Generator().manual_seed(font_seed)
        images.append(_jitter(canvases, copies, generator))
        labels.append(torch.arange(len(LETTERS)).repeat_interleave(copies))
        font_ids.append(torch.full((len(LETTERS) * copies,), font_id))
    data = {
        "version": GLYPHS_VERSION,
        "fonts": sorted(f.name for f in fonts),
        "test_fonts": test_fonts,
        "copies": copies,
        "seed": seed,
        "images": torch.cat(images).mul(255).round().to(torch.uint8)[:, None],
        "labels": torch.cat(labels),
        "font_ids": torch.cat(font_ids),
    }
    _check(data)
    return data


def _check(data: dict[str, Any]) -> None:
    """Both splits hold all ten classes and no image is blank."""
    is_test = _test_mask(data)
    for split, mask in (("train", ~is_test), ("test", is_test)):
        present = torch.unique(data["labels"][mask]).numel()
        if present != len(LETTERS):
            raise ReprolibError(f"glyphs {split} split has {present} of {len(LETTERS)} classes; too few fonts")
    peak = data["images"].flatten(1).amax(1)
    if int(peak.min()) < 128:
        raise ReprolibError(f"glyphs: {int((peak < 128).sum())} images are (nearly) blank; a font renders badly")


def _test_mask(data: dict[str, Any]) -> torch.Tensor:
    test_ids = [i for i, name in enumerate(data["fonts"]) if name in set(data["test_fonts"])]
    return torch.isin(data["font_ids"], torch.tensor(test_ids, dtype=torch.long))


def cache_path(root: Path, fonts: tuple[Font, ...], copies: int = COPIES_PER_FONT, seed: int = SEED) -> Path:
    """root/glyphs_v<version>_<hash of fonts and parameters>.pt"""
    spec = repr((sorted((f.name, f.size_bytes) for f in fonts), copies, seed, TEST_FRACTION, GLYPH_BOX,
                 MAX_ROTATION_DEG, SCALE_RANGE, MAX_SHIFT_PX))
    digest = hashlib.sha1(spec.encode()).hexdigest()[:10]
    return root / f"glyphs_v{GLYPHS_VERSION}_{digest}.pt"


def load_glyphs(split: str, root: Path, system_fonts: bool | None = None) -> ImageSplit:
    """The glyphs `split`, built and cached under root on first use."""
    fonts = find_fonts(system_fonts)
    path = cache_path(root, fonts)
    if path.is_file():
        data = load_weights(path, "delete it and it is rebuilt")
    else:
        data = build_glyphs(fonts)
        atomic_torch_save(data, path)
    mask = _test_mask(data) if split == "test" else ~_test_mask(data)
    note = (f"glyphs v{data['version']}: letters A-J, {len(data['fonts'])} fonts x {data['copies']} jittered "
            f"copies (seed {data['seed']}); split by font, test fonts ({len(data['test_fonts'])}, unseen in "
            f"train): {', '.join(data['test_fonts'])}; cache {path.name}")
    definition = {"source": f"glyphs v{data['version']}", "split": f"by font, {split}", "fonts": data["fonts"],
                  "test_fonts": data["test_fonts"], "copies": data["copies"], "seed": data["seed"]}
    return ImageSplit(info("glyphs"), split, note, data["labels"][mask], images=data["images"][mask],
                      definition=definition)


def read_glyphs(name: str, split: str, root: Path, download: bool, size: int | None) -> ImageSplit:
    """The glyphs entry's reader (`DatasetInfo.loader`): rendered offline (`download` unused), 28 px."""
    return load_glyphs(split, root)
