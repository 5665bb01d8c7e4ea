"""The local sweep's worker processes: one per slot (a CPU share, or a GPU pinned by
CUDA_VISIBLE_DEVICES), fed one unit at a time, longest first.

Each worker is a spawned process talking to the sweep over its own pipe: it receives
(index, unit), runs the guarded runner and sends back (index, outcome). Faults:
- a worker that dies mid-run (killed, out of memory) has its run handed out again, up to
  `retries` times, on a fresh worker for the same slot; after that the run is a failure;
- the workers watch their parent: when the sweep's main process is gone (kill -9), each
  exits within about a second (Linux's parent-death signal, else a polling thread), so no
  worker trains on unwatched;
- Ctrl-C reaches only the main process's handling (workers ignore SIGINT); on any interrupt
  the main process sends every worker SIGTERM, waits up to `STOP_WAIT_S` and kills what is
  left. SIGTERM unwinds a worker (SystemExit), so a file it was writing leaves no temp file.
  Runs in flight are abandoned: records are written atomically, so none is half-written,
  and an abandoned run leaves no failure record. A worker holds no multiprocessing semaphore
  (tqdm's lock is a thread lock there), so a killed one leaks none.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

STOP_WAIT_S = 3.0       # after SIGTERM, seconds before a worker is killed
WATCH_PARENT_S = 0.5    # the polling watchdog's period
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Slot:
    """Where one worker runs: `gpu` the CUDA_VISIBLE_DEVICES value (None: CPU), torch threads."""

    gpu: str | None
    threads: int

    def label(self) -> str:
        return f"GPU {self.gpu}" if self.gpu is not None else "CPU"


def _die_with_parent(parent: int) -> None:
    """Exit when the parent is gone: the kernel's signal on Linux, a watchdog thread always."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(3)
            time.sleep(WATCH_PARENT_S)

    threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:   # the parent died before the signal was armed
        os._exit(3)


def _unwind(signum: int, frame: Any) -> None:
    """SIGTERM (the sweep stopping, or its death) unwinds the worker: a file being written atomically
    removes its temp file on the way out (records.atomic_write), where the default action left it."""
    raise SystemExit(128 + signum)


def _worker(connection, call: Callable[[Any], Any], threads: int, parent: int) -> None:
    """A worker's life: arm the parent watch, then run what the pipe sends until it says stop; then
    leave at once (os._exit: tearing an interpreter with torch loaded down takes seconds, which the
    sweep's stop and the parent watch would otherwise wait for)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the main process's to handle
    signal.signal(signal.SIGTERM, _unwind)
    try:
        _die_with_parent(parent)
        import torch
        from tqdm import tqdm

        # tqdm's default lock is a multiprocessing semaphore, which a worker stopped by a signal never
        # unlinks ("leaked semaphore objects" at the sweep's exit); a worker draws no bar another
        # process shares, so a thread lock does.
        tqdm.set_lock(threading.RLock())
        torch.set_num_threads(threads)
        _serve(connection, call)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _serve(connection, call: Callable[[Any], Any]) -> None:
    """Run (index, unit) messages until None, the pipe's end or the sweep's death."""
    while True:
        try:
            message = connection.recv()
            if message is None:
                return
            index, unit = message
            connection.send((index, call(unit)))
        except (EOFError, BrokenPipeError, ConnectionResetError):   # the sweep is gone: leave quietly
            return


@contextlib.contextmanager
def _pinned(gpu: str | None, sharing: int = 1) -> Iterator[None]:
    """CUDA_VISIBLE_DEVICES=gpu in this process's environment while a worker is spawned, and how
    many workers share that GPU (reprolib.devices.GPU_SHARE_ENV: each plans with its part of the memory)."""
    from reprolib.devices import GPU_SHARE_ENV

    saved = {name: os.environ.get(name) for name in ("CUDA_VISIBLE_DEVICES", GPU_SHARE_ENV)}
    if gpu is not None:
        os.environ.update({"CUDA_VISIBLE_DEVICES": gpu, GPU_SHARE_ENV: str(sharing)})
    try:
        yield
    finally:
        for name, before in saved.items():
            if before is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = before


class WorkerPool:
    """The workers of one sweep (module docstring); `run` yields (index, outcome) as runs finish."""

    def __init__(self, call: Callable[[Any], Any], slots: Sequence[Slot], retries: int = 1,
                 say: Callable[[str], None] = print):
        self.call, self.slots, self.retries, self.say = call, list(slots), retries, say
        self.context = multiprocessing.get_context("spawn")   # no fork of a process holding torch threads
        self.workers: dict[int, tuple[Any, Any]] = {}           # slot -> (process, connection)
        self.in_flight: dict[int, int] = {}                     # slot -> unit index

    def _start(self, slot: int) -> None:
        ours, theirs = self.context.Pipe()
        process = self.context.Process(target=_worker, daemon=True, name=f"reprolib-worker-{slot}",
                                       args=(theirs, self.call, self.slots[slot].threads, os.getpid()))
        gpu = self.slots[slot].gpu
        with _pinned(gpu, sum(1 for other in self.slots if other.gpu == gpu)):
            process.start()
        theirs.close()
        self.workers[slot] = (process, ours)

    def run(self, units: Sequence[Any], order: Sequence[int], describe: Callable[[Any], str] = repr,
            dead: Callable[[str], Any] = RuntimeError) -> Iterator[tuple[int, Any]]:
        """Hand out `units` in `order`; a run lost with its worker is retried, then `dead(msg)` is its outcome."""
        pending, attempts = deque(order), {}
        try:
            for slot in range(min(len(self.slots), len(pending))):
                self._start(slot)
            while pending or self.in_flight:
                for slot in list(self.workers):
                    if slot not in self.in_flight and pending:
                        index = pending.popleft()
                        attempts[index] = attempts.get(index, 0) + 1
                        self.in_flight[slot] = index
                        self.workers[slot][1].send((index, units[index]))
                yield from self._collect(units, pending, attempts, describe, dead)
        except BaseException:
            self.stop()
            raise
        self.close()

    def _collect(self, units, pending, attempts, describe, dead) -> Iterator[tuple[int, Any]]:
        """Wait for a result or a death; a lost run goes back to the front of the queue."""
        by_handle = {}
        for slot, (process, connection) in self.workers.items():
            by_handle[connection] = by_handle[process.sentinel] = slot
        for ready in wait(list(by_handle), timeout=1.0):
            slot = by_handle[ready]
            process, connection = self.workers.get(slot, (None, None))
            if process is None:
                continue
            try:
                index, outcome = connection.recv() if connection.poll() else (None, None)
            except (EOFError, OSError):
                index = None
            if index is not None:
                self.in_flight.pop(slot, None)
                yield index, outcome
            elif not process.is_alive():
                yield from self._lost(slot, units, pending, attempts, describe, dead)

    def _lost(self, slot, units, pending, attempts, describe, dead) -> Iterator[tuple[int, Any]]:
        process, connection = self.workers.pop(slot)
        process.join()
        connection.close()
        index = self.in_flight.pop(slot, None)
        where = f"the worker on {self.slots[slot].label()} (pid {process.pid}) died with exit code {process.exitcode}"
        if index is not None and attempts[index] <= self.retries:
            self.say(f"{where} during {describe(units[index])}; handing that run out again")
            pending.appendleft(index)
        elif index is not None:
            yield index, dead(f"{where} during this run, {attempts[index]} times")
        if pending:
            self._start(slot)

    def close(self) -> None:
        """Tell every worker to stop, and wait for it."""
        for process, connection in self.workers.values():
            with contextlib.suppress(OSError):
                connection.send(None)
        for process, connection in self.workers.values():
            process.join(STOP_WAIT_S)
            connection.close()
        self.stop()

    def stop(self) -> None:
        """SIGTERM every worker, then SIGKILL what is left after STOP_WAIT_S (runs in flight are abandoned)."""
        for process, _ in self.workers.values():
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + STOP_WAIT_S
        for process, connection in self.workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
            connection.close()
        self.workers.clear()
        self.in_flight.clear()
