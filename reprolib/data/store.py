"""The on-disk image cache: one uint8 file per (dataset, split, side), memory-mapped by every reader.

A paper target's split is decoded with PIL and resized once (reprolib.data.paper), then
written here as raw uint8 (N, C, S, S) bytes beside a small JSON sidecar. Readers map the
file (`numpy.memmap`, mode "r") and gather minibatches by index, so a split never lives in
a process's anonymous memory: its pages sit in the shared page cache, one copy for every
run and worker process of a node, and the kernel drops them under pressure. Memory is
bounded by the minibatch, whatever the split's size (CIFAR-10 at 32 px: 150 MB of file;
GTSRB at 224 px: 4.0 GB; SUN397 at 224 px: about 13 GB).

Files, under `<data_root>/cache/`:
- `<stem>.u8`: the images, C-contiguous (N, C, S, S) uint8, no header;
- `<stem>.json`: the sidecar, written LAST (the commit marker): format version, shape,
  labels, split note, class names, the byte count and a BLAKE2b digest of the .u8 file.
`<stem>` = `<dataset>_<split>_<side>_<key>`, `key` a hash of what produced the bytes
(`cache_key`: format version, dataset, split, side, the split definition and the resize
rule), so a change to any of them is a new file, never a stale hit.

Writing streams the decoded minibatches through ordinary file writes (not an mmap, so a
full disk raises ENOSPC instead of killing the process with SIGBUS) into a temp file,
fsyncs it and renames it; only then is the sidecar written (atomically). A killed writer
leaves a temp file that no reader takes for a cache. A reader checks the sidecar and the
size every time, and the digest once per cache file, not once per process: after the digest
matched (or the writer computed it while writing), `<stem>.verified` records the file's
size, modification time, inode and digest, and a later process that finds the same size and time
trusts it (reading 4 GB of GTSRB to hash it in every sweep worker costs more than the runs'
first epoch). A file rewritten or touched since is hashed again; a truncated, corrupt or
foreign file is named in one line on stderr, removed and rebuilt by the caller. (A change
that keeps a file's size and time, bit rot on disk, is not seen after the first check.)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reprolib.errors import ReprolibError
from reprolib.records import atomic_write_bytes, canonical_json

FORMAT_VERSION = 1
DIGEST_CHUNK = 64 * 1024 ** 2   # bytes hashed per read when verifying
_VERIFIED: dict[tuple[str, int, int], str] = {}   # (path, size, mtime_ns) -> digest, per process
DIGESTS = {"computed": 0}   # cache files this process hashed to verify them (tests/test_host_reads.py)


def cache_key(facts: dict[str, Any]) -> str:
    """12 hex digits naming what produced a cache file (FORMAT_VERSION included)."""
    text = canonical_json({"format": FORMAT_VERSION, **facts})
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]


@dataclass(frozen=True)
class CachedSplit:
    """A verified cache file, mapped read-only: `images` (N, C, S, S) uint8 memmap and its facts."""

    images: np.ndarray
    labels: torch.Tensor
    split_note: str
    class_names: tuple[str, ...]
    digest: str


def _paths(stem_path: Path) -> tuple[Path, Path]:
    return stem_path.with_suffix(".u8"), stem_path.with_suffix(".json")


def _verified_path(stem_path: Path) -> Path:
    return stem_path.with_suffix(".verified")


def _stamp(stat: os.stat_result, digest: str) -> dict[str, Any]:
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino, "digest": digest}


def _was_verified(stem_path: Path, stat: os.stat_result, digest: str) -> bool:
    """True when `<stem>.verified` says this very file (same size and time) matched `digest`."""
    try:
        return json.loads(_verified_path(stem_path).read_text()) == _stamp(stat, digest)
    except (OSError, ValueError):
        return False


def _mark_verified(stem_path: Path, stat: os.stat_result, digest: str) -> None:
    """Record a matched digest for later processes; a read-only data root only loses the shortcut."""
    try:
        atomic_write_bytes(_verified_path(stem_path), json.dumps(_stamp(stat, digest)).encode())
    except OSError:
        pass


def _file_digest(path: Path) -> str:
    DIGESTS["computed"] += 1
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(DIGEST_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _discard(stem_path: Path, why: str) -> None:
    """One line naming the bad cache and why; both files removed (the caller rebuilds)."""
    print(f"image cache {stem_path.with_suffix('.u8')}: {why}; rebuilding it", file=sys.stderr)
    for path in (*_paths(stem_path), _verified_path(stem_path)):
        path.unlink(missing_ok=True)


def open_cache(stem_path: Path) -> CachedSplit | None:
    """The cache at `stem_path` (no suffix) mapped read-only, or None when there is none or it
    is bad (then it is removed with one line saying why, and the caller rebuilds it)."""
    data_path, meta_path = _paths(stem_path)
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        shape = tuple(int(v) for v in meta["shape"])
        expected = int(np.prod(shape))
        if meta.get("format") != FORMAT_VERSION:
            _discard(stem_path, f"format {meta.get('format')!r}, this version reads {FORMAT_VERSION}")
            return None
    except (ValueError, KeyError, TypeError, OSError):
        _discard(stem_path, "unreadable sidecar")
        return None
    stat = data_path.stat() if data_path.is_file() else None
    if stat is None or stat.st_size != expected:
        _discard(stem_path, f"{0 if stat is None else stat.st_size} bytes, expected {expected} (truncated)")
        return None
    memo = (str(data_path), stat.st_size, stat.st_mtime_ns)
    if memo not in _VERIFIED and not _was_verified(stem_path, stat, meta["digest"]):
        if _file_digest(data_path) != meta["digest"]:
            _discard(stem_path, "content digest does not match its sidecar (corrupt)")
            return None
        _mark_verified(stem_path, stat, meta["digest"])
    _VERIFIED[memo] = meta["digest"]
    images = np.memmap(data_path, dtype=np.uint8, mode="r", shape=shape) if expected else np.zeros(shape, np.uint8)
    return CachedSplit(images, torch.tensor(meta["labels"], dtype=torch.long), meta["split_note"],
                       tuple(meta["class_names"]), meta["digest"])


def write_cache(stem_path: Path, batches: Iterable[torch.Tensor], shape: tuple[int, int, int, int],
                labels: torch.Tensor, split_note: str, class_names: tuple[str, ...]) -> CachedSplit:
    """Stream uint8 image batches (in split order) into the cache at `stem_path`; see the module
    docstring for the order of writes. Returns the cache opened for reading."""
    data_path, meta_path = _paths(stem_path)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = data_path.with_name(f".{data_path.name}.{os.getpid()}.tmp")
    digest, written = hashlib.blake2b(digest_size=16), 0
    try:
        with open(tmp, "wb") as f:
            for batch in batches:
                chunk = np.ascontiguousarray(batch.numpy(), dtype=np.uint8).tobytes()
                f.write(chunk)
                digest.update(chunk)
                written += len(chunk)
            f.flush()
            os.fsync(f.fileno())
        if written != int(np.prod(shape)):
            raise ReprolibError(f"image cache {data_path}: decoded {written} bytes, expected {int(np.prod(shape))}")
        os.replace(tmp, data_path)
        meta = {"format": FORMAT_VERSION, "shape": list(shape), "labels": labels.tolist(), "split_note": split_note,
                "class_names": list(class_names), "bytes": written, "digest": digest.hexdigest()}
        atomic_write_bytes(meta_path, json.dumps(meta).encode())
    except OSError as err:
        tmp.unlink(missing_ok=True)
        data_path.unlink(missing_ok=True)   # never a data file without its sidecar's promise
        raise ReprolibError(f"could not write the image cache {data_path} ({int(np.prod(shape))} bytes): "
                            f"{err.strerror or err}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    stat = data_path.stat()
    _VERIFIED[(str(data_path), stat.st_size, stat.st_mtime_ns)] = digest.hexdigest()
    _mark_verified(stem_path, stat, digest.hexdigest())
    cached = open_cache(stem_path)
    assert cached is not None
    return cached
