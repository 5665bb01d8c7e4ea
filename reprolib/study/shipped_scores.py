"""A study's shipped scores: the archive the ledger writes where the runs are, and the metrics a
clone fills in from it.

Where the runs are, `ledger` (and the sweep, and notebook 02, through `update_ledger`) packs the
records the ledger was built from into `<artifacts>/scores.npz` (reprolib.scores.archive) when the
profile says how (`ship_scores`: the codec; empty: no archive): the transfer runs, the
Reprogrammer's runs that saved scores, and the learned prompt picture of the runs the explorer
shows (`picture_runs`). In a clone, which has the ledger and the archive but no `runs/`,
`python -m reprolib ledger --recompute-metrics` calls `backfill`: every registered metric the
ledger lacks (a new column, or an empty cell) is computed from the archive's scores and the
run's packed record config and written into the ledger, atomically, once every value is computed;
a value the ledger already holds is left as it is (the archive's logits are rounded by its codec:
ARCHITECTURE.md says to what precision). A metric that cannot be computed from what was saved, a
ledger run missing from the archive, or a cut or foreign archive: one line naming the file and
what to run, exit 2, nothing written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from reprolib import paths
from reprolib.errors import ReprolibError
from reprolib.records import is_aside_file, is_failure_file
from reprolib.scores import archive
from reprolib.scores.recompute import leaves
from reprolib.scores.registry import compute_metrics, entries

REPROGRAMMER_RUNS = "reprogrammer/runs"
# The explorer's run panel (plots/explorer_run.select_run) shows the lowest seed of these cells.
PICTURE_CELL = ["target", "arm", "ticket_kind", "level", "n_shot"]


def picture_runs(ledger: pd.DataFrame) -> frozenset[str]:
    """Ids of the runs whose learned prompt picture ships: the lowest seed of each cell the explorer
    shows (prompt methods only have a picture; the packer skips runs without one)."""
    done = ledger[ledger["status"] != "failed"] if "status" in ledger else ledger
    if done.empty:
        return frozenset()
    lowest = done.sort_values("seed").groupby(PICTURE_CELL, dropna=False, sort=False).head(1)
    return frozenset(str(i) for i in lowest["id"])


def _reprogrammer_records(artifacts: Path) -> list[dict[str, Any]]:
    """The Reprogrammer study's records that saved scores (`<id>.json` beside `<id>.scores.npz`)."""
    folder = artifacts / REPROGRAMMER_RUNS
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        if path.name.startswith(".") or is_aside_file(path) or is_failure_file(path):
            continue
        if (folder / f"{path.stem}.scores.npz").is_file():
            record = json.loads(path.read_text())
            out.append({**record, "id": record.get("id", path.stem)})
    return out


def pack_study(artifacts: Path, codec: str, study: str, ledger: pd.DataFrame,
               records: list[dict[str, Any]]) -> Path | None:
    """Write `<artifacts>/scores.npz` from the ledger's `records` (and the Reprogrammer's runs) with
    `codec`; nothing when there is no run with saved scores, or when the archive is current (same
    codec and runs, newer than every file of the run folders). Returns the path written, or None."""
    folders = [archive.Folder("runs", records, picture_runs(ledger), metrics=False),
               archive.Folder(REPROGRAMMER_RUNS, _reprogrammer_records(artifacts))]
    if not any(folder.records for folder in folders) or _current(artifacts, codec, folders):
        return None
    return archive.pack(artifacts, folders, codec, study)


def _current(artifacts: Path, codec: str, folders: list[archive.Folder]) -> bool:
    """The archive holds these folders' runs with this codec and is newer than each of their files."""
    path = archive.archive_path(artifacts)
    if not path.is_file():
        return False
    # the runs' own files: the writers' lock (reprolib.sweep.lock, a dot file) comes and goes with every command
    newest = max((p.stat().st_mtime_ns for f in folders if (artifacts / f.relative).is_dir()
                  for p in (artifacts / f.relative).iterdir() if not p.name.startswith(".")), default=0)
    if path.stat().st_mtime_ns <= newest:
        return False
    try:
        packed = archive.read(path)
    except ReprolibError:   # a cut or foreign file where the runs are: packed again
        return False
    held = {(run["folder"], run["id"]) for run in packed.manifest["runs"]}
    wanted = {(f.relative, r["id"]) for f in folders for r in f.records
              if (artifacts / f.relative / f"{r['id']}.scores.npz").is_file()}
    return packed.codec == codec and held == wanted


def _ledger_column(path: str) -> str | None:
    """The ledger column of a metrics leaf ('ece' -> 'ece', 'ood.noise.msp_auroc' ->
    'ood_noise_msp_auroc'); None for what the ledger does not show as a column."""
    parts = path.split(".")
    if parts[0] == "ood" and len(parts) == 3:
        return f"ood_{parts[1]}_{parts[2]}"
    shown = {e.name for e in entries(kind="scalar", place="ledger")}
    return path if path in shown else None


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def backfill(artifacts: Path) -> tuple[pd.DataFrame, list[str]]:
    """(the ledger with every metric it lacks filled in from the archive, new columns last; the
    columns filled); raises a one-line ReprolibError when something cannot be filled. Writes nothing:
    reprolib.study.ledger orders the columns and writes the ledger."""
    ledger_file, path = paths.ledger_file(artifacts), archive.archive_path(artifacts)
    if not path.is_file():
        raise ReprolibError(f"--recompute-metrics: no {paths.runs_dir(artifacts)} and no {path}; valid: an artifacts "
                            "folder whose runs/ holds the run records and their saved scores, or a shipped ledger "
                            "with its scores archive")
    if not ledger_file.is_file():
        raise ReprolibError(f"--recompute-metrics: no ledger at {ledger_file}; valid: an artifacts folder with a "
                            "ledger and its scores archive, or with runs/")
    packed, frame = archive.read(path), pd.read_csv(ledger_file)
    records = {record["id"]: record for record in packed.records("runs")}
    done = frame.index[frame["status"] != "failed"] if "status" in frame else frame.index
    absent = [str(frame.at[i, "id"]) for i in done if frame.at[i, "id"] not in records]
    if absent:
        raise ReprolibError(f"the scores archive {path} lacks {len(absent)} run(s) of the ledger (e.g. {absent[0]}); "
                            "rebuild it where the runs are: python -m reprolib ledger --profile P")
    filled: set[str] = set()
    for i in done:
        run_id = frame.at[i, "id"]
        try:
            computed = leaves(compute_metrics(packed.scores(run_id), records[run_id]["config"]))
        except (KeyError, TypeError, ValueError) as err:   # a formula asking for what was not saved
            raise ReprolibError(f"a registered metric cannot be computed for run {run_id} from {path} "
                                f"({type(err).__name__}: {err}); rerun the study to save what it needs: "
                                "python -m reprolib sweep --profile P") from None
        for leaf, value in computed.items():
            column = _ledger_column(leaf)
            if column and isinstance(value, (int, float)) and (column not in frame or _empty(frame.at[i, column])):
                if column not in frame:
                    frame[column] = float("nan")
                frame.at[i, column] = value
                filled.add(column)
    return frame, sorted(filled)
