"""Digests of the tensors a network is made of: what a run's identity says about its network.

A digest is BLAKE2b (16 bytes, hex) over every tensor's name, dtype, shape and raw bytes, in name
order. It depends on the numbers only, never on how a file stores them (torch version, zip layout,
file name), so the same ticket made on two machines has the same digest, and a ticket remade with
other weights has another. File digests are cached per process by (path, size, mtime): a sweep
asks for the same few networks thousands of times, and a remade file has a new mtime.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import torch

from reprolib.errors import ReprolibError
from reprolib.models.weights import load_weights


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """The digest of a name -> tensor mapping (a state dict, a mask)."""
    digest = hashlib.blake2b(digest_size=16)
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def combine(*parts: str) -> str:
    """One digest of several (a model's and its mask's, in that order)."""
    return hashlib.blake2b("|".join(parts).encode(), digest_size=16).hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """The tensors_digest of a tensor file (torch.load with weights_only=True), cached by stat."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as err:
        raise ReprolibError(f"cannot read network file {path}: {err.strerror}") from None
    return _file_digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    tensors = load_weights(path, "remake or re-import it")   # a cut or foreign file: one line
    if not isinstance(tensors, dict):
        raise ReprolibError(f"network file {path} holds a {type(tensors).__name__}, not a state dict")
    return tensors_digest(tensors)


def tree_stamp(path: str | os.PathLike) -> tuple:
    """(relative name, size, mtime) of every file at or under `path`: a cache key that changes
    when any of them is rewritten."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return tuple((str(p.relative_to(path.parent)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
