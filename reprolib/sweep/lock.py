"""One sweep per results folder: a lock file naming its holder (pid, host, start time).

`<runs folder>/.sweep.lock` is created exclusively (O_EXCL) when a sweep starts and removed when
it ends. A second sweep on the same folder stops before any work with one line naming the
holder (the CLI exits 2). A lock left by a process that no longer exists on this host (a
kill -9, a power cut) is taken over, with a line saying so. A lock from another host cannot be
checked from here: the message says which file to remove once that host's sweep is known gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from reprolib.errors import ReprolibError

LOCK_NAME = ".sweep.lock"
_UNREADABLE_WAIT_S = 2.0   # a lock being written by its creator reads empty for a moment


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's process: it exists
        return True
    return True


def _read(path: Path) -> dict | None:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else None


def _holder_of(path: Path) -> dict | None:
    """The lock's holder, waiting a moment for one being written; None when the file went away."""
    deadline = time.monotonic() + _UNREADABLE_WAIT_S
    while True:
        holder = _read(path)
        if holder is not None or not path.exists():
            return holder
        if time.monotonic() > deadline:
            return {"pid": -1, "host": socket.gethostname(), "started": "unreadable lock"}
        time.sleep(0.05)


def _create(path: Path, mine: dict) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(mine, f)
    return True


@contextlib.contextmanager
def sweep_lock(folder: str | Path, say: Callable[[str], None] = print) -> Iterator[Path]:
    """Hold the folder's sweep lock for the duration (module docstring)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    host = socket.gethostname()
    mine = {"pid": os.getpid(), "host": host, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    while not _create(path, mine):
        holder = _holder_of(path)
        if holder is None:
            continue
        if holder.get("host") != host or (holder["pid"] > 0 and _alive(holder["pid"])):
            raise ReprolibError(f"results folder {folder} is in use by the sweep of pid {holder['pid']} on host "
                                f"{holder.get('host')!r} (since {holder.get('started')}); wait for it or stop it "
                                f"(if that sweep is gone, remove {path})")
        say(f"taking over the stale sweep lock of pid {holder['pid']} on {host!r} (that process is gone)")
        with contextlib.suppress(FileNotFoundError):
            if _read(path) == holder or holder["pid"] < 0:
                path.unlink()
    try:
        yield path
    finally:
        if _read(path) == mine:
            path.unlink()


@contextlib.contextmanager
def sweep_locks(folders: list[str | Path], say: Callable[[str], None] = print) -> Iterator[None]:
    """The locks of several results folders, taken in a fixed order (no two sweeps deadlock)."""
    with contextlib.ExitStack() as stack:
        for folder in sorted({str(Path(f).resolve()) for f in folders}):
            stack.enter_context(sweep_lock(folder, say))
        yield
