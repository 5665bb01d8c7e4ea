"""Run records: one JSON file per run, named by a hash of its configuration, written atomically.

A record file either exists completely or not at all (temp file in the same directory,
fsync, `os.replace`), so an interrupted sweep never leaves a half-written result and a
rerun can trust `record_exists` to skip finished work. Companion files (the learned prompt
or head, `.npz`) are written BEFORE the JSON: the JSON is the commit marker.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from reprolib.errors import ReprolibError, check_type


_UMASK = os.umask(0)
os.umask(_UMASK)


def canonical_json(obj: Any) -> str:
    """Key-sorted compact JSON, the form that is hashed (floats as Python writes them)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def config_hash(config: dict[str, Any]) -> str:
    """First 16 hex digits of the SHA-256 of the config's canonical JSON."""
    check_type("config", config, dict)
    try:
        text = canonical_json(config)
    except TypeError as err:
        raise ReprolibError(f"config is not JSON-serialisable: {err}") from None
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


def atomic_write(path: str | Path, write: Any, mode: str = "wb") -> Path:
    """Call `write(f)` on a temp file beside `path`, fsync, then rename it onto `path`.

    Readers see the old file or the whole new one, never a part; on any failure the temp
    file is removed. The one atomic writer of the project (records, ledger, tables,
    figures, tickets, caches).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)   # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        # Interrupted or failed: leave nothing behind but the previous file (if any).
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data), "wb")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """torch.save(obj) atomically (tickets, caches, encoders)."""
    import torch

    return atomic_write(path, lambda f: torch.save(obj, f), "wb")


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented JSON at `path`; readers see the old file or the whole new one."""
    text = json.dumps(obj, indent=1, sort_keys=True)   # serialise first: no file on a TypeError
    return atomic_write(path, lambda f: f.write(text + "\n"), "w")


def write_npz_atomic(path: str | Path, arrays: dict[str, Any]) -> Path:
    """Write numpy arrays to a .npz file atomically (used for learned prompts / heads)."""
    import numpy as np

    return atomic_write(path, lambda f: np.savez(f, **arrays), "wb")


def record_exists(path: str | Path) -> bool:
    return Path(path).is_file()


def read_record(path: str | Path) -> dict[str, Any]:
    """Load one record; a missing or unreadable file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise ReprolibError(f"no run record at {path}")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ReprolibError(f"run record {path} is not valid JSON: {err}") from None


# The keys every record has, whatever study wrote it; study-specific fields go between.
ENVELOPE = ("id", "config", "metrics", "wall_time_s", "versions", "device", "created")


def build_record(run_id: str, config: dict[str, Any], metrics: dict[str, Any], *, wall_time_s: float,
                 device: str, extra_versions: tuple[str, ...] = (), **fields: Any) -> dict[str, Any]:
    """One run record: the common envelope plus the study's own fields (curves, label_map, ...).

    `versions` is `versions(extra_versions)` (the libraries that can change numbers), `created` the current
    UTC time to the second. A study field may not reuse an envelope key.
    """
    clash = sorted(set(fields) & set(ENVELOPE))
    if clash:
        raise ReprolibError(f"record field {clash[0]!r} is part of the record envelope; "
                            f"valid choices: any name but {', '.join(ENVELOPE)}")
    return {"id": run_id, "config": config, "metrics": metrics, **fields,
            "wall_time_s": wall_time_s,
            "versions": versions(extra_versions),
            "device": device,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Library versions that can change numbers, stored in every record.

    `extra` names further packages a study depends on (e.g. ("open_clip",)); each one that
    imports is added with its __version__, one that does not is left out.
    """
    import importlib

    import numpy
    import torch
    import torchvision

    import reprolib

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "reprolib": reprolib.__version__,
    }
    for name in extra:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        out[name] = str(getattr(module, "__version__", "unknown"))
    return out


# A run that raised leaves `<id>.failed.json` (the commit marker, written last) and
# `<id>.traceback.txt` beside where its `<id>.json` would be. A failure record never counts
# as done (`record_exists` looks only at `<id>.json`), so a rerun retries the run; a success
# removes both files (`clear_failure`).
FAILED_SUFFIX = ".failed.json"
TRACEBACK_SUFFIX = ".traceback.txt"


def failure_path(runs_dir: str | Path, run_id: str) -> Path:
    return Path(runs_dir) / f"{run_id}{FAILED_SUFFIX}"


def is_failure_file(path: str | Path) -> bool:
    return Path(path).name.endswith(FAILED_SUFFIX)


def write_failure(runs_dir: str | Path, run_id: str, config: dict[str, Any], error: str,
                  traceback_text: str) -> Path:
    """Write the failure record of run `run_id`: config, one-line error, traceback file name.

    The traceback file goes first and the JSON last, each atomically, so a failure record
    that exists always has its traceback beside it.
    """
    runs_dir = Path(runs_dir)
    traceback_file = runs_dir / f"{run_id}{TRACEBACK_SUFFIX}"
    atomic_write(traceback_file, lambda f: f.write(traceback_text), "w")
    failure = {"id": run_id, "status": "failed", "config": config, "error": error,
               "traceback": traceback_file.name,
               "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    return write_json_atomic(failure_path(runs_dir, run_id), failure)


def clear_failure(runs_dir: str | Path, run_id: str) -> None:
    """Remove a run's failure record and traceback (after the run succeeded)."""
    for suffix in (FAILED_SUFFIX, TRACEBACK_SUFFIX):
        Path(runs_dir, f"{run_id}{suffix}").unlink(missing_ok=True)


def one_line_error(err: BaseException) -> str:
    """'<Type>: <first line of the message>' (a ReprolibError is already one line)."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")
