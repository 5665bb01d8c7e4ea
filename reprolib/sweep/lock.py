"""One writer per results folder: a lock file naming its holder (pid, host, start time, command).

`<runs folder>/.sweep.lock` is created exclusively (O_EXCL) when a writer starts and removed when
it ends. Every command that writes results takes it before it writes anything (the CLI asks the
command's `results_folders(args)`: sweep, transfer, ledger, reprogrammer, tickets), and so does
`run_sweep` (notebook 02). A second writer on the same folder stops before any work with one line
naming the holder (the CLI exits 2). Within one process the lock is re-entrant (the sweep command
holds it around the sweep and the ledger; `run_sweep` inside takes it again). A lock left by a
process that no longer exists on this host (a kill -9, a power cut) is taken over, with a line
saying so (reprolib.progress.emit: the terminal, never a saved notebook). A lock from another
host cannot be checked from here: the message says which file to remove once that host's writer
is known gone.
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
from reprolib.progress import emit

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
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(mine, f)
    except OSError as err:   # a full disk or a read-only folder: no half-written lock stays
        path.unlink(missing_ok=True)
        raise ReprolibError(f"cannot write the lock {path}: {os.strerror(err.errno)}; free some space, or choose "
                            "a folder you can write") from None
    return True


class FolderInUse(ReprolibError):
    """The folder's lock is held by another live writer."""


_HELD: dict[Path, int] = {}   # folders whose lock this process holds -> how many holds are open


@contextlib.contextmanager
def sweep_lock(folder: str | Path, say: Callable[[str], None] = emit, what: str = "a sweep") -> Iterator[Path]:
    """Hold the folder's lock for the duration (module docstring); `what` names this writer to
    whoever is refused."""
    folder = Path(folder).resolve()
    path = folder / LOCK_NAME
    if _HELD.get(folder):   # this process holds it already: re-entrant
        _HELD[folder] += 1
        try:
            yield path
        finally:
            _HELD[folder] -= 1
        return
    made = [p for p in (folder, *folder.parents) if not p.exists()]   # removed again if left empty
    folder.mkdir(parents=True, exist_ok=True)
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "what": what}
    try:
        _acquire(path, mine, say)
        _HELD[folder] = 1
        yield path
    finally:
        _HELD.pop(folder, None)
        if _read(path) == mine:
            path.unlink()
        for empty in made:   # a writer refused or failed before writing leaves no folder behind
            with contextlib.suppress(OSError):
                empty.rmdir()


def _acquire(path: Path, mine: dict, say: Callable[[str], None]) -> None:
    """Create the lock file as `mine`, taking over a stale one; a live holder is a one-line refusal."""
    host = mine["host"]
    while not _create(path, mine):
        holder = _holder_of(path)
        if holder is None:
            continue
        if holder.get("host") != host or (holder["pid"] > 0 and _alive(holder["pid"])):
            raise FolderInUse(f"results folder {path.parent} is in use by {holder.get('what', 'a sweep')} (pid "
                                f"{holder['pid']} on host {holder.get('host')!r}, since {holder.get('started')}); "
                                f"wait for it or stop it (if it is gone, remove {path})")
        say(f"taking over the stale sweep lock of pid {holder['pid']} on {host!r} (that process is gone)")
        with contextlib.suppress(FileNotFoundError):
            if _read(path) == holder or holder["pid"] < 0:
                path.unlink()

@contextlib.contextmanager
def sweep_locks(folders: list[str | Path], say: Callable[[str], None] = emit, what: str = "a sweep") -> Iterator[None]:
    """The locks of several results folders, taken in a fixed order (no two writers deadlock)."""
    with contextlib.ExitStack() as stack:
        for folder in sorted({str(Path(f).resolve()) for f in folders}):
            stack.enter_context(sweep_lock(folder, say, what))
        yield
