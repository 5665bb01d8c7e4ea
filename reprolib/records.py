"""Run records: one JSON file per run, named by a hash of its configuration, written atomically.

A record file either exists completely or not at all (temp file in the same directory,
fsync, `os.replace`), so an interrupted sweep never leaves a half-written result and a
rerun can trust `record_exists` to skip finished work. Companion files (the learned prompt
or head, `.npz`) are written BEFORE the JSON: the JSON is the commit marker.

A record carries `digests` (`seal`): the SHA-256 of each companion file, by name, and of the
record itself (config, metrics, everything but that digest). `verified_record` checks them: a
record edited by hand, or whose companion file was cut, replaced or deleted, is named in one
line and moved aside, and the run runs again. Another companion file is covered by listing it
(`write_run_files`' companions, or `seal(record, folder, names)` then `write_json_atomic` for one
added later); code that rewrites a record (new metrics) calls `seal` again.
"""

from __future__ import annotations

import datetime
import errno
import functools
import hashlib
import json
import os
import math
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

from reprolib.determinism import cpu_facts
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
    except BaseException as err:
        # Interrupted or failed: leave nothing behind but the previous file (if any).
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno in _CANNOT_WRITE:
            raise ReprolibError(f"cannot write {path}: {os.strerror(err.errno)}; nothing was left behind "
                                "(free some space, or choose a folder you can write)") from None
        raise
    return path


_CANNOT_WRITE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def nearest_folder(path: Path, what: str) -> Path:
    """`path`, or the nearest existing folder above it; a file there (or above) is one line naming `what`."""
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "is a file" if probe == path else f"lies under the file {probe}"
        raise ReprolibError(f"{what} {path} {where}; valid: a folder (existing, or one that can be made)")
    return probe


def check_output_dir(path: str | Path, what: str) -> Path:
    """Refuse an output folder that cannot be made or written, before any work: `path` itself, or
    the nearest existing folder above it, must be a writable folder. Creates nothing."""
    path = Path(path).expanduser()
    probe = nearest_folder(path, what)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ReprolibError(f"{what} {path} is not writable ({probe} is read-only); valid: a folder you can write")
    return path


def write_run_files(out_dir: str | Path, run_id: str, record: dict[str, Any], arrays: dict[str, Any] | None,
                    companions: tuple[tuple[Path, Any], ...] = ()) -> Path:
    """`<id>.npz` (the learned state; none when `arrays` is None), each companion `(path, write(f))`
    (the saved scores: reprolib.scores.saved), then `<id>.json` (the commit marker); when a later
    file cannot be written (a full disk) the earlier ones are removed too, so no orphan file
    stays. Returns the JSON path."""
    out_dir = Path(out_dir)
    written = [] if arrays is None else [write_npz_atomic(out_dir / f"{run_id}.npz", arrays)]
    try:
        for path, write in companions:
            written.append(atomic_write(path, write))
        seal(record, out_dir, [path.name for path in written])   # the digests of what is on disk
        return write_json_atomic(out_dir / f"{run_id}.json", record)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


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
    """True when a sound record is at `path` (verified_record); a bad one is moved aside, so False."""
    return verified_record(path) is not None


# What every finished run's record holds (finite numbers); a record without them is not done.
REQUIRED_METRICS = ("accuracy", "ece", "nll")
# A transfer record's config is the run's resolved description (reprolib.transfer.run.resolve)
# plus what the run found. Its id hashes all of it but these keys, so the id can be recomputed.
# NEUTRAL_KEYS: fields of the description that do not change a number, each proven by a test
# (tests/test_run_description.py, one proof per key): how the study names the run (the profile
# and its source set: every number they decide is hashed as itself; the grid's network / kind /
# level / replicate / pretrained_dir: the network itself is `network_fingerprint`; the whole protocol preset:
# the run's share of it is hashed as hparams, schedule, epochs, batch sizes, seed, ...).
NEUTRAL_KEYS = ("profile", "source", "network", "kind", "level", "replicate", "pretrained_dir", "protocol")
# FOUND_KEYS: what the run found as it ran (the ticket's facts, the split note, sizes, shots).
FOUND_KEYS = ("ticket", "split", "n_train", "n_test", "n_val", "effective_shots")
RECORD_ONLY_KEYS = NEUTRAL_KEYS + FOUND_KEYS   # shown in a record, not hashed
BAD_SUFFIX = ".bad.json"   # a record that failed verification, kept for a look, never read


def record_id(config: dict[str, Any]) -> str:
    """The run id a record's config hashes to: config_hash of the config without RECORD_ONLY_KEYS."""
    return config_hash({k: v for k, v in config.items() if k not in RECORD_ONLY_KEYS})


def record_problem(record: Any, expected_id: str, recompute_id: Any = record_id,
                   required: tuple[str, ...] = REQUIRED_METRICS) -> str | None:
    """Why `record` is not a sound record of run `expected_id` (None when it is): the envelope,
    the id (stored and recomputed from the config), and the `required` metrics present and finite."""
    if not isinstance(record, dict) or not record:
        return "it is empty" if record in ({}, [], None) else f"it holds a JSON {type(record).__name__}"
    config, metrics = record.get("config"), record.get("metrics")
    if not isinstance(config, dict) or not isinstance(metrics, dict):
        return "it lacks 'config' or 'metrics'"
    if record.get("id") != expected_id:
        return f"its id {record.get('id')!r} is not its file name's {expected_id!r}"
    try:
        recomputed = recompute_id(config)
    except ReprolibError as err:
        return str(err)
    if recomputed != expected_id:
        return f"its config hashes to {recomputed}, not {expected_id} (edited or written by other code)"
    for name in required:
        value = metrics.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"metric {name!r} is {'missing' if value is None else repr(value)}, not a finite number"
    return None


def verified_record(path: str | Path, expected_id: str | None = None, recompute_id: Any = record_id,
                    required: tuple[str, ...] = REQUIRED_METRICS, absent_files_ok: bool = False) -> dict[str, Any] | None:
    """The record at `path` if it is sound; None when there is none or it is bad.

    `expected_id` defaults to the file name; `recompute_id(config)` gives the id a config
    hashes to; `required` names the metrics a finished record holds. A bad record (truncated
    JSON, `{}`, an edited config, a missing or non-finite metric) is named in one line on stderr
    and moved aside to `<id>.bad.json`, so the next sweep reruns the run and the ledger never
    shows it. `absent_files_ok`: a record shipped without its companion files is read for its
    metrics; a companion that is there must match its digest, and the record its own."""
    path = Path(path)
    expected_id = expected_id or path.name.removesuffix(".json")
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        problem = record_problem(record, expected_id, recompute_id, required)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        record, problem = None, f"it is not valid JSON ({getattr(err, 'msg', err)}; truncated?)"
    problem = problem or digest_problem(record, path.parent, absent_files_ok)
    if problem is None:
        return record
    move_aside(path, problem)
    return None


DIGESTS = "digests"   # {"files": {name: sha256}, "record": sha256 of the record with its files' digests}


def seal(record: dict[str, Any], folder: str | Path, names: list[str] | None = None) -> dict[str, Any]:
    """Give `record` its digests (module docstring): of the files `names` in `folder` (None: keep
    the files' digests it holds, e.g. after new metrics), then of the record itself. Returns the
    record, changed in place."""
    held = dict((record.get(DIGESTS) or {}).get("files", {}))
    files = held if names is None else {name: file_sha256(Path(folder) / name) for name in names}
    record[DIGESTS] = {"files": files, "record": _record_sha256(record, files)}
    return record


def _record_sha256(record: dict[str, Any], files: dict[str, str]) -> str:
    """SHA-256 of the record as stored (JSON: int keys become strings) with only its files' digests."""
    stored = json.loads(canonical_json({**record, DIGESTS: {"files": files}}))
    return hashlib.sha256(canonical_json(stored).encode("ascii")).hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in blocks (cached while its size and mtime stay)."""
    stat = Path(path).stat()
    return _file_sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def digest_problem(record: dict[str, Any], folder: Path, absent_files_ok: bool = False) -> str | None:
    """Why a record does not match its digests (None when it does, or when it predates them);
    `absent_files_ok`: a companion file that is not there is no problem (verified_record)."""
    digests = record.get(DIGESTS)
    if digests is None:
        return None
    files = digests.get("files") if isinstance(digests, dict) else None
    if not isinstance(files, dict) or any(not isinstance(n, str) or Path(n).name != n for n in files):
        return "its digests are malformed"
    if digests.get("record") != _record_sha256(record, files):
        return "its content does not match its digest (edited by hand?)"
    for name, expected in sorted(files.items()):
        if not (folder / name).is_file():
            if absent_files_ok and not (folder / name).exists():
                continue
            return f"its file {name} is missing"
        if file_sha256(folder / name) != expected:
            return f"its file {name} does not match its digest (cut, replaced or edited)"
    return None


def move_aside(path: Path, problem: str) -> Path:
    """Rename a bad record to `<name>.bad.json` (replacing an older one) and say so in one line."""
    aside = path.with_name(path.name.removesuffix(".json") + BAD_SUFFIX)
    os.replace(path, aside)
    print(f"warning: run record {path} is bad: {problem}; moved to {aside.name}, the next sweep reruns it",
          file=sys.stderr)
    return aside


def is_aside_file(path: str | Path) -> bool:
    return Path(path).name.endswith(BAD_SUFFIX)


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
# `cpu`: what decided the CPU kernels' numbers (reprolib.determinism.cpu_facts: capability, threads, pin,
# the MKL mode MKL reports).
ENVELOPE = ("id", "config", "metrics", "wall_time_s", "versions", "device", "cpu", "created")


def build_record(run_id: str, config: dict[str, Any], metrics: dict[str, Any], *, wall_time_s: float,
                 device: str, extra_versions: tuple[str, ...] = (), **fields: Any) -> dict[str, Any]:
    """One run record: the common envelope plus the study's own fields (curves, label_map, ...).

    `versions` is `versions(extra_versions)` (the libraries that can change numbers), `cpu` the
    CPU kernels' instruction set, threads and MKL mode (reprolib.determinism), `created` the current
    UTC time to the second. A study field may not reuse an envelope key.
    """
    clash = sorted(set(fields) & {*ENVELOPE, DIGESTS})
    if clash:
        raise ReprolibError(f"record field {clash[0]!r} is part of the record envelope; "
                            f"valid choices: any name but {', '.join(ENVELOPE)}")
    return {"id": run_id, "config": config, "metrics": metrics, **fields,
            "wall_time_s": wall_time_s,
            "versions": versions(extra_versions),
            "device": device,
            "cpu": cpu_facts(),
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
