"""Stored inputs: what a method's `forward` takes, gathered one minibatch at a time.

A method never holds a split as float: its stored inputs are the split itself (uint8 or
float storage, reprolib.data.split) plus a per-minibatch conversion to what `forward` takes
(`from_split`: gather by index -> device -> float -> the method's `encode`, e.g. channel
matching and resizing for a prompt), or a small tensor computed once (`from_tensor`: the
cached linear probe's penultimate features). The training loop, evaluation, the label-mapping
pass and OOD scoring all walk these in minibatches, so memory is bounded by a minibatch
whatever the split's size. Converting a gathered minibatch gives bit for bit what converting
the whole split and then indexing gave: every conversion acts on each image alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch import Tensor

from reprolib import batching
from reprolib.batching import minibatches


class StoredInputs:
    """`len`, `labels` (CPU int64), `x(idx)` (the inputs at positions `idx`, on the device) and
    `batch(idx)` = (x, labels on the device)."""

    def __init__(self, labels: Tensor, gather: Callable[[Tensor], Tensor], device: str):
        self.labels = labels.cpu()
        self.device = device
        self._gather = gather
        self._labels_on_device = self.labels.to(device)

    def __len__(self) -> int:
        return len(self.labels)

    def x(self, idx: Tensor) -> Tensor:
        return self._gather(idx)

    __getitem__ = x   # so reprolib.batching.predict walks stored inputs as it walks a tensor

    def batch(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        return self._gather(idx), self._labels_on_device[idx.to(self._labels_on_device.device)]

    def in_order(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """(x, y) minibatches in order; call again for a fresh pass (ILM remaps every epoch)."""
        for idx in minibatches(len(self), batch_size, None):
            yield self.batch(idx)


def from_split(split: Any, convert: Callable[[Tensor], Tensor], device: str) -> StoredInputs:
    """A split's images gathered per minibatch on `device` (float [0, 1]) and passed through `convert`."""
    return StoredInputs(split.labels, lambda idx: convert(split.gather(idx, device)), device)


def from_tensor(values: Tensor, labels: Tensor, device: str) -> StoredInputs:
    """Precomputed inputs (e.g. LP features), indexed per minibatch and moved to `device`."""
    return StoredInputs(labels, lambda idx: values[idx.to(values.device)].to(device), device)


def predict(forward: Callable[[Tensor], Tensor], inputs: StoredInputs, batch_size: int) -> Tensor:
    """forward() of every stored input, in order, as a float32 CPU tensor: reprolib.batching.predict
    (no gradients, no autocast), minibatch by minibatch on the inputs' device."""
    return batching.predict(forward, inputs, batch_size, inputs.device)
