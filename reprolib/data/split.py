"""ImageSplit: one split of one dataset behind a single small API.

Two storage modes share the API:
- in memory: an (N, C, H, W) tensor, uint8 (0..255) or float32 already in [0, 1];
  every small set and every paper set whose cache file fits (< 2 GB) lives here.
- lazy: a torch Dataset yielding (uint8 C x S x S tensor, label), read through a
  DataLoader in our own (seeded) order; used for paper sets too big to keep in memory.
Either way `tensors()` and `batches()` hand out float32 images in [0, 1].
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from reprolib.data.catalog import DatasetInfo
from reprolib.errors import ReprolibError, check_type
from reprolib.records import atomic_torch_save

# Cache a lazily read split as one tensor file when its uint8 images fit in this many bytes.
MATERIALIZE_LIMIT_BYTES = 2 * 1024**3


def _to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 / 255; float stays as it is (already in [0, 1])."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    return images.to(torch.float32)


class ImageSplit:
    """The `split` ("train" | "test") of one dataset: images, labels and provenance.

    `split_note` says which split definition produced it (official torchvision split,
    seeded stratified split, font-disjoint split...), so every result can record it.
    """

    def __init__(
        self,
        info: DatasetInfo,
        split: str,
        split_note: str,
        labels: torch.Tensor,
        images: torch.Tensor | None = None,
        dataset: torch.utils.data.Dataset | None = None,
        dataset_indices: torch.Tensor | None = None,
        cache_path: Path | None = None,
        num_workers: int = 0,
        cache_extra: dict[str, Any] | None = None,
    ):
        """In memory (`images`) or lazy (`dataset` with its indices, cache file and workers).

        Many parameters because one class serves both modes; loaders pass them by keyword.
        """
        if (images is None) == (dataset is None):
            raise ValueError("ImageSplit needs exactly one of images (in memory) or dataset (lazy)")
        self.info = info
        self.split = split
        self.split_note = split_note
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self._images = images
        self._dataset = dataset
        # Lazy mode: which items of `dataset` this split holds, in order.
        if dataset is not None and dataset_indices is None:
            dataset_indices = torch.arange(len(self.labels))
        self._dataset_indices = dataset_indices
        self._cache_path = cache_path
        self._num_workers = num_workers
        self._cache_extra = cache_extra or {}
        if images is not None and len(images) != len(self.labels):
            raise ValueError(f"{len(images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        mode = "in memory" if self._images is not None else "lazy"
        return f"ImageSplit({self.info.name!r}, {self.split!r}, n={len(self)}, {mode}; {self.split_note})"

    @property
    def in_memory(self) -> bool:
        return self._images is not None

    def class_counts(self) -> torch.Tensor:
        """Number of images of each class (length num_classes)."""
        return torch.bincount(self.labels, minlength=self.info.num_classes)

    def subset(self, indices: Sequence[int] | torch.Tensor) -> ImageSplit:
        """The images at `indices` (positions in this split), same info and split note."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if len(idx) and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise ReprolibError(f"subset index out of range for {self.info.name} {self.split} of {len(self)} images")
        if self._images is not None:
            return ImageSplit(self.info, self.split, self.split_note, self.labels[idx], images=self._images[idx])
        return ImageSplit(
            self.info, self.split, self.split_note, self.labels[idx], dataset=self._dataset,
            dataset_indices=self._dataset_indices[idx], num_workers=self._num_workers,
        )

    def materialize(self) -> ImageSplit:
        """Read a lazy split into memory once (and cache it on disk when it is a full split)."""
        if self._images is not None:
            return self
        chunks = [x for x, _ in self._iter_lazy(torch.arange(len(self)), batch_size=256)]
        c, s = self.info.channels, self.info.image_size
        self._images = torch.cat(chunks) if chunks else torch.empty(0, c, s, s, dtype=torch.uint8)
        if self._cache_path is not None:
            atomic_torch_save({"images": self._images, "labels": self.labels, "split_note": self.split_note,
                         **self._cache_extra}, self._cache_path)
        self._dataset = None
        return self

    def _fits_in_memory(self) -> bool:
        c, s = self.info.channels, self.info.image_size
        return len(self) * c * s * s <= MATERIALIZE_LIMIT_BYTES

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images float32 (N, C, H, W) in [0, 1], labels int64 (N,))."""
        if self._images is None:
            if not self._fits_in_memory():
                raise ReprolibError(
                    f"{self.info.name} {self.split} has {len(self)} images, too many to hold in memory; "
                    "use .batches() or .subset() instead"
                )
            self.materialize()
        return _to_float(self._images), self.labels.clone()

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
        if self._images is None and self._fits_in_memory():
            self.materialize()  # decode once; later epochs reuse the tensor
        if self._images is None:
            for x, y in self._iter_lazy(order, batch_size):
                yield _to_float(x).to(device), y.to(device)
            return
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            yield _to_float(self._images[idx]).to(device), self.labels[idx].to(device)

    def _iter_lazy(self, order: torch.Tensor, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Read items of the lazy dataset in `order` (positions in this split)."""
        sampler = self._dataset_indices[order].tolist()
        loader = torch.utils.data.DataLoader(
            self._dataset, batch_size=batch_size, sampler=sampler, num_workers=self._num_workers,
        )
        for i, (x, _) in enumerate(loader):
            # Our labels, not the dataset's: they were read (and checked) once at load time.
            yield x, self.labels[order[i * batch_size:(i + 1) * batch_size]]
