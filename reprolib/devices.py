"""Devices: resolving "auto", mixed precision on CUDA, and a device's name for records.

torch is imported inside the functions so that the profile checks (which only need DEVICES)
stay free of torch.
"""

from __future__ import annotations

import contextlib
import platform

from reprolib.errors import ReprolibError

DEVICES = ("auto", "cpu", "cuda")


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
