"""A study's scores in one compressed archive, `<artifacts>/scores.npz`, shipped in git.

A clone has no `runs/` folder (the records, learned states and saved scores stay on the machine
that ran the study), so without this archive a metric registered later could not be filled in
for the shipped runs. `pack` writes, from the records the ledger was built from:

- every run's record (without its training curves; a transfer run's without its metrics, which
  the ledger holds), its test logits, its OOD logits per set
  (reprolib.scores.ood_files) and, for other studies' runs (the Reprogrammer's
  `reprogrammer/runs/<id>.scores.npz`), every array of its saved scores, by name;
- integer arrays (test labels, label maps) once per distinct content: the labels once per target;
- the learned prompt picture (`prompt.theta` / `prompt.delta`) and label map of the runs the
  explorer shows (the lowest seed of each target x arm x network x shots cell), in float16.

Format: a numpy .npz (zip, stored) of xz streams, each a uint8 array: `manifest` (JSON: format,
version, codec, the runs and where each array lies), `logits`, `ints` and `prompts` (each the
concatenated arrays, integers in the narrowest type that holds them, byte-shuffled, then lzma).
The manifest holds each stream's element type and the SHA-256 of every decompressed stream;
`read` checks the zip, each stream and each digest, so a cut or foreign file is a one-line error
naming it and what to run.

Codecs (`CODECS`, the profile's `ship_scores`): "float32" keeps the logits exactly; "float16"
rounds them to float16; "q<b>" (q6, q8, ...) rounds each logit to a multiple of 2^-b (absolute
precision 2^-(b+1)), the smallest for the error it allows (logits matter through their
differences, so a fixed step spends its bits where float16 does not). Sizes per run and what each
codec does to recomputed metrics: ARCHITECTURE.md ("Shipped scores"), bench/bench_archive.py.
"""

from __future__ import annotations

import functools
import hashlib
import json
import lzma
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reprolib.errors import ReprolibError, check_choice
from reprolib.records import atomic_write

ARCHIVE_NAME = "scores.npz"
FORMAT, VERSION = "reprolib-scores", 1
STREAMS = ("manifest", "logits", "ints", "prompts")
CODECS = ("float32", "float16", "q5", "q6", "q7", "q8", "q10", "q12")
STORED_TYPES = ("<f4", "<f2", "|i1", "<i2", "<i4", "<i8")   # what a stream may hold (a manifest is data)
PICTURE_KEYS = ("prompt.theta", "prompt.delta", "label_map")   # what the explorer's run panel reads
_XZ = {"preset": 6}   # 9e packs these streams no smaller (no long repeats to find) and takes longer


def archive_path(artifacts: str | Path) -> Path:
    """`<artifacts>/scores.npz`."""
    return Path(artifacts) / ARCHIVE_NAME


# ----------------------------------------------------------------------------- codecs

def encode(logits: np.ndarray, codec: str) -> np.ndarray:
    """Float logits -> what the `logits` stream stores (float32, float16 or int32 multiples of 2^-b)."""
    check_choice("scores codec", codec, CODECS)
    values = np.asarray(logits, dtype=np.float32)
    if not np.isfinite(values).all():
        raise ReprolibError("scores archive: logits with NaN or inf cannot be packed; valid: finite logits "
                            "(rerun the run that made them)")
    if codec == "float32":
        return values
    if codec == "float16":
        return values.astype(np.float16)
    return np.round(values * 2.0 ** int(codec[1:])).astype(np.int32)


def decode(stored: np.ndarray, codec: str) -> np.ndarray:
    """The float32 logits a stored array stands for."""
    if codec.startswith("q"):
        return (stored.astype(np.float64) * 2.0 ** -int(codec[1:])).astype(np.float32)
    return stored.astype(np.float32)


def stream_dtype(name: str, codec: str) -> np.dtype:
    """The element type of stream `name` under `codec` as encoded (the manifest records the type
    each stream is stored in: integers in the narrowest type that holds them)."""
    if name == "logits":
        return np.dtype({"float32": np.float32, "float16": np.float16}.get(codec, np.int32))
    return np.dtype(np.int64 if name == "ints" else np.float16)


def _narrowest(values: np.ndarray) -> np.ndarray:
    """Integers in the smallest of int8 / int16 / int32 / int64 that holds them all (fewer bytes for
    lzma to read: the high bytes of wide integers are zeros); floats as they are."""
    if not np.issubdtype(values.dtype, np.integer) or values.size == 0:
        return values
    low, high = int(values.min()), int(values.max())
    kind = next(t for t in (np.int8, np.int16, np.int32, np.int64)
                if np.iinfo(t).min <= low and high <= np.iinfo(t).max)
    return values.astype(kind)


def _shuffle(values: np.ndarray) -> bytes:
    """Byte planes (every element's first byte, then every second byte, ...): xz packs them far
    better than interleaved floats (the sign / exponent bytes repeat)."""
    planes = values.view(np.uint8).reshape(-1, values.itemsize)
    return np.ascontiguousarray(planes.T).tobytes()


def _unshuffle(raw: bytes, dtype: np.dtype) -> np.ndarray:
    planes = np.frombuffer(raw, dtype=np.uint8).reshape(dtype.itemsize, -1)
    return np.ascontiguousarray(planes.T).view(dtype).ravel()


# ----------------------------------------------------------------------------- writing

class _Streams:
    """The arrays of each stream as they are added, and where each lies (manifest entries)."""

    def __init__(self, codec: str):
        self.codec = codec
        self.parts: dict[str, list[np.ndarray]] = {name: [] for name in STREAMS[1:]}
        self.length = {name: 0 for name in STREAMS[1:]}
        self.seen_ints: dict[str, dict[str, Any]] = {}

    def add(self, stream: str, array: np.ndarray) -> dict[str, Any]:
        """Append `array` (logits transposed to class-major order, which packs better) to `stream`."""
        array = np.asarray(array)
        if stream == "ints":
            key = hashlib.sha256(repr(array.shape).encode() + array.astype(np.int64).tobytes()).hexdigest()
            if key in self.seen_ints:   # the same labels for every run of a target: stored once
                return self.seen_ints[key]
        stored = {"logits": lambda a: encode(a.T if a.ndim == 2 else a, self.codec),
                  "ints": lambda a: a.astype(np.int64), "prompts": lambda a: a.astype(np.float16)}[stream](array)
        entry = {"stream": stream, "offset": self.length[stream], "shape": list(array.shape),
                 "transposed": stream == "logits" and array.ndim == 2}
        self.parts[stream].append(np.ascontiguousarray(stored).ravel())
        self.length[stream] += stored.size
        if stream == "ints":
            self.seen_ints[key] = entry
        return entry

    def blobs(self) -> tuple[dict[str, bytes], dict[str, str]]:
        """({stream: its byte-shuffled values}, {stream: the numpy type they are stored in})."""
        out, types = {}, {}
        for name, parts in self.parts.items():
            values = np.concatenate(parts) if parts else np.zeros(0, stream_dtype(name, self.codec))
            values = _narrowest(values.astype(stream_dtype(name, self.codec), copy=False))
            out[name], types[name] = _shuffle(values), values.dtype.str
        return out, types


def _run_arrays(runs_dir: Path, record: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every array a finished run saved for its metrics: `<id>.scores.npz`'s, and `ood/<set>` for
    each OOD set its record's `ood_sets` names (checked against its digest; a record without
    `ood_sets`, another study's: every `<id>.ood-<set>.npz` beside it)."""
    from reprolib.scores.ood_files import INFIX, ood_path, read_ood

    run_id = record["id"]
    with np.load(runs_dir / f"{run_id}.scores.npz", allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    named = [member for members in (record.get("ood_sets") or {}).values() for member in members]
    if not named:
        named = [(path.name[len(run_id) + len(INFIX):-len(".npz")], None)
                 for path in sorted(runs_dir.glob(f"{run_id}{INFIX}*.npz"))]
    for name, digest in named:
        arrays[f"ood/{name}"] = read_ood(ood_path(runs_dir, run_id, name), digest).numpy()
    return arrays


def _picture(runs_dir: Path, run_id: str) -> dict[str, np.ndarray]:
    path = runs_dir / f"{run_id}.npz"
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in PICTURE_KEYS if key in npz.files}


@dataclass(frozen=True)
class Folder:
    """One folder of runs to pack: its path relative to the artifacts, its records, and the ids whose
    learned prompt picture ships."""

    relative: str
    records: list[dict[str, Any]]
    pictures: frozenset[str] = frozenset()
    metrics: bool = True    # False: the records' metrics stay out (the ledger holds them)


def pack(artifacts: str | Path, folders: Iterable[Folder], codec: str, study: str) -> Path:
    """Write `<artifacts>/scores.npz` atomically from `folders`; runs without `<id>.scores.npz`
    are left out. Returns its path."""
    check_choice("scores codec (the profile's ship_scores)", codec, CODECS)
    artifacts, streams, runs = Path(artifacts), _Streams(codec), []
    for folder in folders:
        runs_dir = artifacts / folder.relative
        dropped = ("curves",) if folder.metrics else ("curves", "metrics")
        for record in folder.records:
            run_id = record["id"]
            if not (runs_dir / f"{run_id}.scores.npz").is_file():
                continue
            arrays = {name: streams.add("ints" if np.issubdtype(a.dtype, np.integer) else "logits", a)
                      for name, a in _run_arrays(runs_dir, record).items()}
            picture = _picture(runs_dir, run_id) if run_id in folder.pictures else {}
            learned = {k: streams.add("ints" if k == "label_map" else "prompts", a) for k, a in picture.items()}
            runs.append({"id": run_id, "folder": folder.relative, "arrays": arrays, "learned": learned,
                         "record": {k: v for k, v in record.items() if k not in dropped}})
    blobs, types = streams.blobs()
    manifest = {"format": FORMAT, "version": VERSION, "study": study, "codec": codec, "runs": runs,
                "streams": {name: {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw),
                                   "dtype": types[name]} for name, raw in blobs.items()}}
    blobs["manifest"] = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    packed = {name: np.frombuffer(lzma.compress(blobs[name], **_XZ), dtype=np.uint8) for name in STREAMS}
    return atomic_write(archive_path(artifacts), lambda f: np.savez(f, **packed))


# ----------------------------------------------------------------------------- reading

class ScoresArchive:
    """A checked archive (`read`): its records and arrays by run id, logits decoded to float32.
    Each stream is decompressed, and its digest checked, when it is first read."""

    def __init__(self, path: Path, manifest: dict[str, Any], packed: dict[str, bytes]):
        self.path, self.manifest, self._packed = path, manifest, packed
        self.codec = manifest["codec"]
        self._runs = {(run["folder"], run["id"]): run for run in manifest["runs"]}
        self._streams: dict[str, np.ndarray] = {}

    def records(self, folder: str = "runs") -> list[dict[str, Any]]:
        """The packed records of one folder (`runs`: transfer runs; `reprogrammer/runs`)."""
        return [run["record"] for (f, _), run in self._runs.items() if f == folder]

    def _stream(self, name: str) -> np.ndarray:
        if name not in self._streams:
            raw = _decompress(self.path, name, self._packed[name])
            if hashlib.sha256(raw).hexdigest() != self.manifest["streams"][name]["sha256"]:
                raise ReprolibError(f"scores archive {self.path}: its {name} stream does not match its manifest "
                                    f"(cut or edited); {_fix(self.path)}")
            self._streams[name] = _unshuffle(raw, np.dtype(self.manifest["streams"][name]["dtype"]))
        return self._streams[name]

    def _array(self, entry: dict[str, Any]) -> np.ndarray:
        shape = entry["shape"][::-1] if entry["transposed"] else entry["shape"]
        size = int(np.prod(shape)) if shape else 1
        values = self._stream(entry["stream"])[entry["offset"]:entry["offset"] + size].reshape(shape)
        if entry["stream"] == "logits":
            values = decode(values, self.codec)
        elif entry["stream"] == "prompts":
            values = values.astype(np.float32)   # stored as float16
        return np.array(values.T if entry["transposed"] else values, order="C")   # a writable copy

    def _run(self, run_id: str, folder: str) -> dict[str, Any]:
        run = self._runs.get((folder, run_id))
        if run is None:
            raise ReprolibError(f"run {run_id} is not in the scores archive {self.path} ({folder}); rebuild it where "
                                "the runs are: python -m reprolib ledger --profile P")
        return run

    def arrays(self, run_id: str, folder: str = "runs") -> dict[str, np.ndarray]:
        """Every saved array of a run by name (`test_logits`, `test_labels`, `ood/<set>`, or another
        study's own names), logits as float32."""
        return {name: self._array(entry) for name, entry in self._run(run_id, folder)["arrays"].items()}

    def learned(self, run_id: str, folder: str = "runs") -> dict[str, np.ndarray]:
        """The run's learned prompt picture arrays and label map (`prompt.theta` / `prompt.delta` as
        float32 from their float16 copy, `label_map` int64), the keys of its `<id>.npz`; {} for a
        run whose picture does not ship (or is not here)."""
        run = self._runs.get((folder, run_id))
        return {} if run is None else {k: self._array(e) for k, e in run["learned"].items()}

    def scores(self, run_id: str):
        """A transfer run's SavedScores: test logits and labels, and its OOD groups (the sets its
        record's `ood_sets` names, concatenated in order)."""
        import torch

        from reprolib.scores.saved import SavedScores

        arrays, record = self.arrays(run_id), self._run(run_id, "runs")["record"]
        groups = {}
        for group, members in (record.get("ood_sets") or {}).items():
            missing = [name for name, _ in members if f"ood/{name}" not in arrays]
            if missing:
                raise ReprolibError(f"the scores archive {self.path} lacks run {run_id}'s OOD set {missing[0]}; "
                                    "rebuild it where the runs are: python -m reprolib ledger --profile P")
            groups[group] = torch.cat([torch.from_numpy(arrays[f"ood/{name}"]) for name, _ in members])
        return SavedScores(torch.from_numpy(arrays["test_logits"]), torch.from_numpy(arrays["test_labels"]), groups)


def _fix(path: Path) -> str:
    return f"restore the shipped copy (git checkout -- {path}) or rebuild it where the runs are " \
           "(python -m reprolib ledger --profile P)"


def _decompress(path: Path, name: str, packed: bytes) -> bytes:
    try:
        return lzma.decompress(packed)
    except lzma.LZMAError as err:
        raise ReprolibError(f"scores archive {path}: its {name} stream is cut ({err}); {_fix(path)}") from None


def read(path: str | Path) -> ScoresArchive:
    """The archive at `path`, checked (the zip and its members' CRCs, the manifest's format; each
    stream's digest when it is first read): a missing, cut or foreign file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise ReprolibError(f"no scores archive at {path}; {_fix(path)}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            packed = {name: npz[name].tobytes() for name in STREAMS}
        manifest = json.loads(_decompress(path, "manifest", packed.pop("manifest")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise ReprolibError(f"scores archive {path} is cut or not a scores archive ({type(err).__name__}: "
                            f"{str(err)[:80]}); {_fix(path)}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION \
            or manifest.get("codec") not in CODECS or set(manifest.get("streams") or ()) != set(STREAMS[1:]) \
            or any(stream.get("dtype") not in STORED_TYPES for stream in manifest["streams"].values()):
        raise ReprolibError(f"scores archive {path} is not a {FORMAT} v{VERSION} archive; {_fix(path)}")
    return ScoresArchive(path, manifest, packed)


@functools.lru_cache(maxsize=2)
def _cached(path: str, mtime_ns: int, size: int) -> ScoresArchive:
    return read(path)


def opened(path: str | Path) -> ScoresArchive:
    """`read`, kept while the file is unchanged (the explorer asks for one run at a time)."""
    stat = Path(path).stat()
    return _cached(str(path), stat.st_mtime_ns, stat.st_size)


def learned_arrays(artifacts: str | Path, run_id: str) -> dict[str, np.ndarray]:
    """The explorer's fallback for a run whose `<id>.npz` is not here (a clone): its learned prompt
    picture and label map from `<artifacts>/scores.npz`; {} when there is no archive or it lacks them."""
    path = archive_path(artifacts)
    return opened(path).learned(run_id) if path.is_file() else {}
