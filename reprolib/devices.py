"""Devices: resolving "auto", mixed precision on CUDA, a device's name for records, and moving
data between the host and the device without making the host wait.

- `to_host(tensor, site)` is the one way the transfer loop reads device values on the host (a
  device -> host copy makes the host wait for every kernel queued before it). Each call is
  counted in `HOST_READS[site]`, so a test can check that a pass reads once, not once per
  minibatch (tests/test_host_reads.py). On the `meta` device, which holds shapes but no data,
  it returns zeros: the tests run the whole loop there, where any other read (`.item()`,
  `float(t)`, `.cpu()`, `.tolist()`) raises, so a stray sync cannot hide.
- `to_device(tensor, device)`: host -> device from pinned memory without blocking on CUDA (a
  plain `.to("cuda")` of pageable memory waits for the copy, and so for the queue before it).
- `ResidentBudget`: the bytes reprolib keeps on a device by choice (few-shot training sets,
  LP features), a fraction of the device's memory; the rest is left to the runs' own work.

torch is imported inside the functions so that the profile checks (which only need DEVICES)
stay free of torch.
"""

from __future__ import annotations

import contextlib
import platform
from collections import Counter
from typing import Any

from reprolib.errors import ReprolibError

DEVICES = ("auto", "cpu", "cuda")
HOST_READS: Counter[str] = Counter()   # device -> host reads of this process, by site (`to_host`)
RESIDENT_FRACTION = 0.25               # of a device's memory that resident data may take (ResidentBudget)
META_MEMORY = 80 * 1024 ** 3           # what the meta device claims to have: an H100's 80 GiB
GPU_SHARE_ENV = "REPROLIB_GPU_SHARE"   # worker processes sharing this process's GPU (the sweep sets it)


_ELSEWHERE: list[str] = []   # devices that the jobs' machines have, not this one (`jobs_run_on`)


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available() and device not in _ELSEWHERE:
        raise ReprolibError("device 'cuda' requested but no CUDA GPU is visible; valid choices here: auto, cpu")
    return device


@contextlib.contextmanager
def jobs_run_on(device: str):
    """Inside: `device` resolves as it will where the jobs run, though this machine lacks it (a
    Slurm login node without a GPU names the runs, and finds their records, as its GPU jobs will)."""
    _ELSEWHERE.append(device)
    try:
        yield
    finally:
        _ELSEWHERE.remove(device)


def autocast(device: str) -> contextlib.AbstractContextManager:
    """bf16 mixed precision on CUDA, nothing on CPU (where bf16 would only cost accuracy)."""
    import torch

    if str(device).startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def device_name(device: str) -> str:
    """'cuda: <GPU name>' or 'cpu: <processor>', as stored in every record."""
    import torch

    if str(device).startswith("cuda"):
        return f"cuda: {torch.cuda.get_device_name(torch.device(device))}"
    return f"cpu: {platform.processor() or platform.machine()}"


def on_host(device: Any) -> bool:
    """True for the CPU: the host is the device, so nothing is copied, pinned or kept resident."""
    return str(device).split(":")[0] == "cpu"


def to_host(tensor: Any, site: str) -> Any:
    """`tensor` on the CPU, counted in HOST_READS[site] (module docstring); zeros on `meta`."""
    import torch

    HOST_READS[site] += 1
    if tensor.device.type == "meta":
        return torch.zeros(tensor.shape, dtype=tensor.dtype)
    return tensor.cpu()


def copy_to_host(out: Any, tensor: Any) -> None:
    """Copy a device tensor into the host tensor `out` without waiting (pinned `out` on CUDA); read
    `out` only after `wait_for`. On `meta` (no data) `out` keeps what it holds."""
    if tensor.device.type != "meta":
        out.copy_(tensor, non_blocking=True)


def wait_for(device: Any, site: str) -> None:
    """The host waits for the work queued on `device` (CUDA), counted in HOST_READS[site] like a read."""
    import torch

    HOST_READS[site] += 1
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(torch.device(device))


def to_device(batch: Any, device: Any) -> Any:
    """A CPU tensor on `device`: pinned and non-blocking on CUDA (the copy overlaps compute)."""
    if str(device).startswith("cuda"):
        if not batch.is_pinned():
            batch = batch.pin_memory()
        return batch.to(device, non_blocking=True)
    return batch.to(device)


def device_memory(device: Any) -> int:
    """Bytes of `device`'s memory this process plans with: the GPU's total over the workers sharing
    it (GPU_SHARE_ENV, set by the sweep for `--runs-per-gpu`), META_MEMORY for `meta`, 0 for the CPU."""
    import os

    import torch

    kind = str(device).split(":")[0]
    if kind == "cuda":
        total = torch.cuda.get_device_properties(torch.device(device)).total_memory
        return int(total) // max(1, int(os.environ.get(GPU_SHARE_ENV, "1")))
    return META_MEMORY if kind == "meta" else 0


class ResidentBudget:
    """Bytes kept resident on each device by choice, at most RESIDENT_FRACTION of its memory.

    `reserve(device, n)` says whether n more bytes fit (and counts them); `release` gives them
    back. One budget per process (`RESIDENT`): a sweep worker's runs share it.
    """

    def __init__(self) -> None:
        self.used: Counter[str] = Counter()

    def limit(self, device: Any) -> int:
        return int(RESIDENT_FRACTION * device_memory(device))

    @staticmethod
    def key(device: Any) -> str:
        """'cuda' and 'cuda:0' are one device (a worker sees one GPU), 'cuda:1' another."""
        kind, _, index = str(device).partition(":")
        return kind if index in ("", "0") else f"{kind}:{index}"

    def fits(self, device: Any, nbytes: int) -> bool:
        """Whether n more bytes fit now (an accelerator only: the host is never 'resident')."""
        return not on_host(device) and self.used[self.key(device)] + nbytes <= self.limit(device)

    def reserve(self, device: Any, nbytes: int) -> bool:
        if not self.fits(device, nbytes):
            return False
        self.used[self.key(device)] += nbytes
        return True

    def release(self, device: Any, nbytes: int) -> None:
        self.used[self.key(device)] -= nbytes


RESIDENT = ResidentBudget()
