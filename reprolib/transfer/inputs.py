"""Stored inputs: what a method's `forward` takes, gathered one minibatch at a time.

A method never holds a split as float: its stored inputs are the split itself (uint8 or
float storage, reprolib.data.split) plus a per-minibatch conversion to what `forward` takes
(`from_split`: gather by index -> device -> float -> the method's `encode`, e.g. channel
matching and resizing for a prompt), or a small tensor computed once (`from_tensor`: the
cached linear probe's penultimate features). The training loop, evaluation, the label-mapping
pass and OOD scoring all walk these in minibatches, so memory is bounded by a minibatch
whatever the split's size. Converting a gathered minibatch gives bit for bit what converting
the whole split and then indexing gave: every conversion acts on each image alone.

Where the stored rows live, chosen once (`mode`):
- "host": on the CPU every minibatch is gathered when it is needed (the device is the host);
  so are inputs that only offer `gather` (pooled OOD images).
- "resident": on an accelerator, rows whose bytes fit the process's resident budget
  (reprolib.devices.RESIDENT: few-shot training sets, most test sets, LP features) are copied
  to the device once, as stored (uint8), and every minibatch is indexed there: nothing crosses
  from the host per step but the indices.
- "prefetch": larger splits on an accelerator stream through reprolib.data.prefetch: a thread
  gathers the next minibatch into a pinned buffer while the device computes this one.
The three give the same bytes, so the same numbers; only where the gather runs changes.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor

from reprolib import batching
from reprolib.batching import minibatches
from reprolib.data.prefetch import Prefetcher, Take
from reprolib.data.split import to_float
from reprolib.devices import RESIDENT, on_host, to_device


class Rows:
    """Stored rows a StoredInputs can keep resident or prefetch: `take(idx, out)` gathers them on
    the host into a buffer, `convert(rows)` turns rows on the device into what `forward` takes."""

    def __init__(self, take: Take, shape: tuple[int, ...], dtype: torch.dtype, convert: Callable[[Tensor], Tensor],
                 on_device: Tensor | None = None):
        self.take, self.shape, self.dtype, self.convert = take, tuple(shape), dtype, convert
        self.on_device = on_device   # already on the device (LP features that fit): used as they are

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


UPLOAD_BYTES = 64 * 1024 ** 2   # host buffer of a resident upload: the rows go up in chunks of this size


def _upload(rows: Rows, device: str) -> Tensor:
    """All rows on `device`, as stored, copied up in chunks (host memory bounded by a chunk)."""
    resident = torch.empty(rows.shape, dtype=rows.dtype, device=device)
    per_row = max(1, rows.nbytes // max(1, rows.shape[0]))
    step = max(1, UPLOAD_BYTES // per_row)
    buffer = torch.empty((min(step, rows.shape[0]), *rows.shape[1:]), dtype=rows.dtype)
    for start in range(0, rows.shape[0], step):
        idx = torch.arange(start, min(start + step, rows.shape[0]))
        resident[start:start + len(idx)] = to_device(rows.take(idx, buffer), device)   # pinned copy: buffer reusable
    return resident


class StoredInputs:
    """`len`, `labels` (CPU int64), `x(idx)` (the inputs at positions `idx`, on the device),
    `batch(idx)` = (x, labels on the device), `batches(index_batches)` (the same for each index
    batch, prefetched where the mode says) and `mode` (module docstring)."""

    def __init__(self, labels: Tensor, gather: Callable[[Tensor], Tensor], device: str, rows: Rows | None = None):
        self.labels = labels.cpu()
        self.device = device
        self._gather = gather
        self._labels_on_device = to_device(self.labels, device)
        self._rows, self._resident, self.mode = rows, None, "host"
        if rows is not None and not on_host(device):
            self.mode = "resident" if rows.on_device is not None or RESIDENT.reserve(device, rows.nbytes) else "prefetch"
        if self.mode == "resident":
            self._resident = rows.on_device
            if self._resident is None:
                self._resident = _upload(rows, device)
                weakref.finalize(self, RESIDENT.release, device, rows.nbytes)

    def __len__(self) -> int:
        return len(self.labels)

    def x(self, idx: Tensor) -> Tensor:
        if self._resident is not None:
            return self._rows.convert(self._resident[to_device(idx.cpu(), self._resident.device)])
        return self._gather(idx)

    __getitem__ = x   # so reprolib.batching.predict walks stored inputs as it walks a tensor

    def _labels(self, idx: Tensor) -> Tensor:
        return self._labels_on_device[to_device(idx.cpu(), self._labels_on_device.device)]

    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        return self.x(idx), self._labels(idx)

    def batches(self, index_batches: Iterable[Tensor]) -> Iterator[tuple[Tensor, Tensor]]:
        """(x, y) for each index batch, in order; prefetched a step ahead in "prefetch" mode."""
        if self.mode != "prefetch":
            for idx in index_batches:
                yield self.batch(idx)
            return
        rows = self._rows
        for idx, on_device in Prefetcher(rows.take, rows.shape[1:], rows.dtype, self.device, index_batches):
            yield rows.convert(on_device), self._labels(idx)

    def in_order(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """(x, y) minibatches in order; call again for a fresh pass (ILM remaps every epoch)."""
        return self.batches(minibatches(len(self), batch_size, None))


def from_split(split: Any, convert: Callable[[Tensor], Tensor], device: str) -> StoredInputs:
    """A split's images gathered per minibatch on `device` (float [0, 1]) and passed through `convert`."""
    rows = None
    if hasattr(split, "raw_into"):   # an ImageSplit: its stored bytes can stay resident or be prefetched
        rows = Rows(split.raw_into, (len(split), *split.image_shape), split.dtype, lambda raw: convert(to_float(raw)))
    return StoredInputs(split.labels, lambda idx: convert(split.gather(idx, device)), device, rows)


def from_tensor(values: Tensor, labels: Tensor, device: str) -> StoredInputs:
    """Precomputed inputs (e.g. LP features), indexed per minibatch and moved to `device`: kept
    where they are when that is the device, else gathered from the host (prefetched)."""
    def take(idx: Tensor, out: Tensor) -> Tensor:
        return torch.index_select(values, 0, idx, out=out[:len(idx)])

    rows = Rows(take, tuple(values.shape), values.dtype, lambda x: x,
                on_device=values if values.device.type == torch.device(device).type else None)
    return StoredInputs(labels, lambda idx: values[idx.to(values.device)].to(device), device, rows)


def predict(forward: Callable[[Tensor], Tensor], inputs: StoredInputs, batch_size: int) -> Tensor:
    """forward() of every stored input, in order, as a float32 CPU tensor: reprolib.batching's
    (no gradients, no autocast, read from the device once), minibatch by minibatch."""
    return batching.predict_batches(forward, (x for x, _ in inputs.in_order(batch_size)))
