"""ImageSplit: one split of one dataset behind a single small API, gathered by index.

The images stay in their stored form, uint8 (0..255) or, for the small embedded sets that
come as fractions, float32 in [0, 1]:
- a tensor in memory (the embedded sets: at most a few hundred MB), or
- a read-only memory map of the split's on-disk cache (reprolib.data.store: every paper
  set), so a split of any size costs no anonymous memory.
A subset is an index into the same storage (no copy). Minibatches are gathered by index,
moved to the device (from pinned memory, non-blocking, on CUDA) and only there turned into
float32 in [0, 1]: nothing ever holds a whole paper split as float (`gather`, `batches`).
`tensors()` is the whole split as float, for the small sets only (upstream training, the
Reprogrammer study); it refuses a split over `TENSORS_LIMIT_BYTES`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from reprolib.data.catalog import DatasetInfo
from reprolib.errors import ReprolibError, check_type

# `tensors()` refuses to build a float32 copy larger than this (paper splits walk minibatches).
TENSORS_LIMIT_BYTES = 1024 ** 3


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 / 255; float stays as it is (already in [0, 1])."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    return images.to(torch.float32)


def to_device(batch: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """A CPU batch on `device`: pinned and non-blocking on CUDA (the copy overlaps compute)."""
    if str(device).startswith("cuda"):
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


class ImageSplit:
    """The `split` ("train" | "test") of one dataset: images, labels and provenance.

    `split_note` says which split definition produced it (official torchvision split,
    seeded stratified split, font-disjoint split...), so every result can record it.
    `images` is a tensor (N, C, H, W) or a read-only uint8 memmap of the same shape;
    `index` the positions of this split's items in it (None: all, in order).
    """

    def __init__(self, info: DatasetInfo, split: str, split_note: str, labels: torch.Tensor,
                 images: torch.Tensor | np.ndarray, index: torch.Tensor | None = None,
                 digest: str | None = None, definition: dict[str, Any] | None = None):
        """`digest` names the stored bytes (the cache file's), for keys that must not hash them again;
        `definition` is the loader's split definition, free of machine paths (a run's id holds it)."""
        self.info = info
        self.split = split
        self.split_note = split_note
        self.definition = definition
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self._images = images
        self._index = index
        self.digest = digest
        if len(self.labels) != (len(images) if index is None else len(index)):
            raise ValueError(f"{len(images) if index is None else len(index)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        mode = "in memory" if self.in_memory else "memory-mapped"
        return f"ImageSplit({self.info.name!r}, {self.split!r}, n={len(self)}, {mode}; {self.split_note})"

    @property
    def in_memory(self) -> bool:
        """True for a tensor in memory, False for a memory-mapped cache file."""
        return isinstance(self._images, torch.Tensor)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the stored images."""
        return tuple(int(v) for v in self._images.shape[1:])

    @property
    def positions(self) -> torch.Tensor:
        """This split's items as positions in the underlying storage."""
        return torch.arange(len(self._images)) if self._index is None else self._index

    def fingerprint(self) -> str:
        """Hex digest naming exactly these images: the cache file's digest and the positions in
        it, or (in memory) the stored bytes themselves."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(repr((self.image_shape, str(self._images.dtype), len(self))).encode())
        if self.digest is not None:
            digest.update(self.digest.encode())
            digest.update(self.positions.numpy().tobytes())
        else:
            digest.update(self.raw(torch.arange(len(self))).contiguous().numpy().tobytes())
        return digest.hexdigest()

    def content_fingerprint(self) -> str:
        """Hex digest of what this split serves: its images (`fingerprint`) and its labels. For a
        cached paper split it reads no image: the cache's digest was computed once, when written."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(self.fingerprint().encode())
        digest.update(self.labels.numpy().astype("<i8").tobytes())
        return digest.hexdigest()

    def class_counts(self) -> torch.Tensor:
        """Number of images of each class (length num_classes)."""
        return torch.bincount(self.labels, minlength=self.info.num_classes)

    def subset(self, indices: Sequence[int] | torch.Tensor) -> ImageSplit:
        """The images at `indices` (positions in this split), same storage, info and split note."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if len(idx) and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise ReprolibError(f"subset index out of range for {self.info.name} {self.split} of {len(self)} images")
        return ImageSplit(self.info, self.split, self.split_note, self.labels[idx], self._images,
                          index=self.positions[idx], digest=self.digest, definition=self.definition)

    def raw(self, indices: torch.Tensor) -> torch.Tensor:
        """The stored images at `indices` (positions in this split), as stored (uint8 or float), on the CPU."""
        where = self.positions[indices.cpu()] if self._index is not None else indices.cpu()
        if self.in_memory:
            return self._images[where]
        return torch.from_numpy(np.ascontiguousarray(self._images[where.numpy()]))

    def gather(self, indices: torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
        """float32 images in [0, 1] at `indices`, on `device` (converted there, after the copy)."""
        return to_float(to_device(self.raw(indices), device))

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images float32 (N, C, H, W) in [0, 1], labels int64 (N,)): small splits only."""
        c, h, w = self.image_shape
        if len(self) * c * h * w * 4 > TENSORS_LIMIT_BYTES:
            raise ReprolibError(
                f"{self.info.name} {self.split} has {len(self)} images of {c}x{h}x{w}, too many to hold as float32; "
                "use .batches() or .gather() instead"
            )
        return self.gather(torch.arange(len(self))), self.labels.clone()

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        device: str | torch.device = "cpu",
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x float32 in [0, 1], y int64) on `device`; the last batch may be smaller.

        shuffle=True orders the split by torch.randperm(len, generator=generator), so the
        same seeded generator gives the same batches.
        """
        check_type("batch_size", batch_size, int)
        if batch_size < 1:
            raise ReprolibError(f"batch_size must be a positive int, got {batch_size}")
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            yield self.gather(idx, device), self.labels[idx].to(device)


def from_tensors(images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo | None = None) -> ImageSplit:
    """An in-memory ImageSplit of given tensors (tests, benchmarks); `info` defaults to a
    placeholder named "tensors" with as many classes as the labels show."""
    if info is None:
        k = int(labels.max()) + 1 if len(labels) else 1
        c, s = int(images.shape[1]), int(images.shape[-1])
        info = DatasetInfo(name="tensors", num_classes=k, class_names=tuple(f"class {i}" for i in range(k)),
                           image_size=s, channels=c, prompt_size=s, kind="embedded", loader="glyphs")
    return ImageSplit(info, "train", "given tensors", labels.cpu(), images.cpu(), definition={"source": "given tensors"})
