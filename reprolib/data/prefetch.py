"""Prefetching: the next minibatch gathered on a background thread into a pinned double buffer.

On a GPU a training step is a queue of kernels; a host that gathers the next minibatch from the
memory map only after queueing this step leaves the device waiting for the gather (page faults,
the index copy) and for the copy to the device. `Prefetcher` gathers on a thread, one minibatch
ahead, into one of two preallocated buffers (pinned on CUDA, so the copy is asynchronous); the
consumer copies the ready buffer to the device without blocking and hands the buffer back. A
buffer is refilled only once its copy has finished (a CUDA event the filling thread waits for),
so no copy reads bytes being overwritten. The bytes are those `take` gives, bit for bit: only
when and where the gather runs changes.

`take(indices, out)` writes the rows at `indices` into the buffer `out` and returns the filled
part (`ImageSplit.raw_into`, or `index_select` of a host tensor).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor

from reprolib.devices import to_device

Take = Callable[[Tensor, Tensor], Tensor]
DEPTH = 2   # buffers: one being filled while the other is copied to the device
_DONE = object()


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher:
    """(indices, rows on `device`) for each index batch, gathered a step ahead (module docstring).

    `rows` has `row_shape` and `dtype` per row; the index batches are taken as a list up front,
    so any generator that drew them (a seeded permutation) is used on the caller's thread.
    """

    def __init__(self, take: Take, row_shape: tuple[int, ...], dtype: torch.dtype, device: str,
                 index_batches: Iterable[Tensor]):
        self.take, self.row_shape, self.dtype, self.device = take, tuple(row_shape), dtype, str(device)
        self.index_batches = [idx.cpu() for idx in index_batches]
        self.pinned = self.device.startswith("cuda")
        self._buffers: list[Tensor | None] = [None] * DEPTH
        self._free: queue.Queue = queue.Queue()
        self._ready: queue.Queue = queue.Queue()
        self._stop = False

    def _buffer(self, slot: int, rows: int) -> Tensor:
        buffer = self._buffers[slot]
        if buffer is None or len(buffer) < rows:
            buffer = torch.empty((rows, *self.row_shape), dtype=self.dtype, pin_memory=self.pinned)
            self._buffers[slot] = buffer
        return buffer

    def _fill(self) -> None:
        try:
            for idx in self.index_batches:
                slot, copied = self._free.get()
                if self._stop:
                    return
                if copied is not None:
                    copied.synchronize()   # this thread waits for the copy, never the training thread
                self._ready.put((slot, idx, self.take(idx, self._buffer(slot, len(idx)))))
            self._ready.put(_DONE)
        except BaseException as err:   # re-raised on the consumer's thread
            self._ready.put(_Failed(err))

    def _copy(self, host: Tensor) -> tuple[Tensor, object | None]:
        """The filled buffer on the device, and the event that says the copy is done (CUDA)."""
        if self.device == "cpu":
            return host.clone(), None   # the buffer is refilled next step: keep a copy of its own
        rows = to_device(host, self.device)
        if not self.pinned:
            return rows, None
        event = torch.cuda.Event()
        event.record()
        return rows, event

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for slot in range(DEPTH):
            self._free.put((slot, None))
        thread = threading.Thread(target=self._fill, name="reprolib-prefetch", daemon=True)
        thread.start()
        try:
            while (item := self._ready.get()) is not _DONE:
                if isinstance(item, _Failed):
                    raise item.error
                slot, idx, host = item
                rows, copied = self._copy(host)
                self._free.put((slot, copied))
                yield idx, rows
        finally:
            self._stop = True
            self._free.put((0, None))   # wakes a thread waiting for a buffer, which then stops
            thread.join()
