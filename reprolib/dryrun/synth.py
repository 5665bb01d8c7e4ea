"""Class-dependent synthetic images and atomic file writes for the dry run.

Each class c of a dataset gets a fixed look, drawn from a generator seeded by
(seed, dataset name, c): a base colour and a sinusoidal stripe pattern (frequency and
orientation). Each image adds its own phase shift and pixel noise. A linear probe on
any reasonable feature extractor can separate the classes, so a dry-run training
curve moves, yet no two images are identical.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np


def dataset_seed(seed: int, name: str) -> int:
    """A stable per-dataset seed (crc32 of the name; Python's hash() is salted per run)."""
    return (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**32)


class ImageMaker:
    """Draws uint8 H x W x 3 images whose look depends on the class."""

    def __init__(self, name: str, num_classes: int, seed: int):
        base = dataset_seed(seed, name)
        styles = []
        for c in range(num_classes):
            rng = np.random.default_rng([base, c])
            styles.append((rng.uniform(40, 215, 3), rng.uniform(1.0, 6.0), rng.uniform(0, np.pi),
                           rng.uniform(25, 50)))
        self._styles = styles
        self._rng = np.random.default_rng([base, 1 << 20])   # per-image phase and noise

    def image(self, label: int, size: int | tuple[int, int]) -> np.ndarray:
        height, width = (size, size) if isinstance(size, int) else size
        colour, freq, angle, amplitude = self._styles[label]
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
        phase = self._rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * freq * (xx * np.cos(angle) + yy * np.sin(angle)) / max(height, width) + phase)
        pixels = colour[None, None, :] + amplitude * wave[..., None]
        pixels = pixels + self._rng.normal(0, 12, (height, width, 3))
        return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def save_image(path: Path, pixels: np.ndarray, fmt: str) -> None:
    """Save H x W x 3 uint8 `pixels` as `fmt` ("JPEG", "PPM", "PNG"); not atomic (small files,
    and the dataset's completion marker is written last)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"quality": 92} if fmt == "JPEG" else {}
    Image.fromarray(pixels, "RGB").save(path, format=fmt, **kwargs)
