"""How far a grid has got: finished, failed and missing runs per cell, and the command that completes them.

For GPU profiles (`trains_in_notebooks: false`: paper, paper-headline) the grid runs outside the
notebooks (`make sweep`, Slurm); notebook 02 then only reports this table. It is read from the
configs stored in the records and failure records of the runs folder, so it works on any
machine the results are copied to (a run's id depends on its device, and the ledger's ticket
kind is the network's, e.g. "magnitude" for a one-shot level the grid asks for as "imp").

A cell is one target x arm x network; its runs are the shots x seeds. `complete with` is the
`sweep --only` slice that runs what the cell lacks (finished runs are skipped by the sweep).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from reprolib.config import PROFILE_DIR, Profile, profile_path
from reprolib import paths
from reprolib.study.ledger import (ID_COLUMNS, METRIC_COLUMNS, STATUS_COLUMNS, TAIL_COLUMNS, arm_name, load_ledger,
                                   update_ledger)
from reprolib.sweep.lock import FolderInUse, sweep_lock
from reprolib.records import is_aside_file, verified_record
from reprolib.sparsity.identity import stale_network

CELL = ["target", "arm", "network", "kind", "level"]
COLUMNS = CELL + ["runs", "finished", "failed", "missing", "complete with"]


FAILED_SUFFIX = ".failed.json"


def _key(fields: Any) -> tuple:
    get = fields.get if isinstance(fields, dict) else lambda name: getattr(fields, name, None)
    dense = get("network") == "dense"
    return (get("target"), arm_name(get("method"), get("label_map") or None), get("network"),
            "imp" if dense else get("kind"), 0 if dense else get("level"), get("n_shot"), get("seed"))


def run_states(runs: Path) -> dict[tuple, str]:
    """Study key -> "finished" or "failed", from the records in a runs folder (unreadable ones, records
    set aside, records that fail their checks (records.verified_record: moved aside) and records whose
    network has been remade since they ran are skipped: the sweep reruns those)."""
    states: dict[tuple, str] = {}
    for path in sorted(Path(runs).glob("*.json")) if Path(runs).is_dir() else []:
        if is_aside_file(path) or path.name.startswith("."):
            continue
        try:
            record = json.loads(path.read_text()) if path.name.endswith(FAILED_SUFFIX) else verified_record(path)
            config = record.get("config")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(config, dict):
            key = _key(config)
            if path.name.endswith(FAILED_SUFFIX):
                states.setdefault(key, "failed")
            elif stale_network(config, str(Path(runs).parent)) is None:
                states[key] = "finished"   # a finished record wins over an old failure
    return states


def current_ledger(artifacts: Path, ship_scores: str = "", study: str = "") -> pd.DataFrame:
    """The ledger rebuilt from the records (and the scores archive packed, as update_ledger does),
    under the runs folder's lock (reprolib.sweep.lock); while a sweep holds the folder, the ledger
    as saved (that sweep rebuilds it when it ends), in one line."""
    try:
        with sweep_lock(paths.runs_dir(artifacts), what="notebook 02"):
            return update_ledger(artifacts, ship_scores=ship_scores, study=study)
    except FolderInUse as busy:
        print(f"{busy}; the ledger below is the one saved before it")
        if paths.ledger_file(artifacts).is_file():
            return load_ledger(artifacts, failed=True)
        return pd.DataFrame(columns=[*ID_COLUMNS, *METRIC_COLUMNS, *TAIL_COLUMNS, *STATUS_COLUMNS])


def profile_argument(profile: Profile) -> str:
    """What `--profile` takes for this profile: its name, or its file for a user's own."""
    file = profile_path(profile.profile)
    return profile.profile if file.parent == PROFILE_DIR else str(file)


def ledger_states(ledger: pd.DataFrame) -> dict[tuple, str]:
    """Study key -> "finished" or "failed", from a ledger's rows (a study shipped without its records).
    A one-shot network's row (ticket kind "magnitude") also answers for the grid's name of it ("imp")."""
    states: dict[tuple, str] = {}
    for row in ledger.to_dict("records"):
        fields = {name: _plain(row.get(name)) for name in ("target", "method", "label_map", "network", "level",
                                                           "n_shot", "seed")}
        kinds = {_plain(row.get("ticket_kind"))} | ({"imp"} if row.get("provenance") == "oneshot" else set())
        for key in {_key({**fields, "kind": kind}) for kind in kinds}:
            if row.get("status") == "failed":
                states.setdefault(key, "failed")
            else:
                states[key] = "finished"
    return states


def _plain(value: Any) -> Any:
    """A CSV cell as the config held it: NaN -> None, 3.0 -> 3."""
    if isinstance(value, float):
        return None if value != value else int(value) if value.is_integer() else value
    return value


def grid_status(configs: list[Any], runs: Path, profile: Profile, ledger: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per cell of the grid: runs, finished, failed, missing, and the command for the rest;
    from the records in `runs`, or from `ledger` when given (the shipped results of a checkout)."""
    states = run_states(runs) if ledger is None else ledger_states(ledger)
    counts: dict[tuple, Counter] = {}
    for config in configs:
        key = _key(config)
        counts.setdefault(key[:len(CELL)], Counter())[states.get(key, "missing")] += 1
    rows = []
    for cell, count in counts.items():
        target, arm, network, kind, level = cell
        slice_ = f"target={target},method={arm},network={network},kind={kind},level={level}"
        command = "" if count["finished"] == sum(count.values()) else \
            f"python -m reprolib sweep --profile {profile_argument(profile)} --only {slice_}"
        rows.append([*cell, sum(count.values()), count["finished"], count["failed"], count["missing"], command])
    return pd.DataFrame(rows, columns=COLUMNS)


def summary_line(status: pd.DataFrame, profile: Profile) -> str:
    """'N of M runs finished, F failed, X missing; ...' with the command that completes the grid."""
    total, finished = int(status["runs"].sum()), int(status["finished"].sum())
    line = f"{finished} of {total} runs finished, {int(status['failed'].sum())} failed, " \
           f"{int(status['missing'].sum())} missing"
    if finished == total:
        return line + "; the grid is complete"
    return line + f"; complete the grid with: make sweep PROFILE={profile_argument(profile)} " \
                  f"(or python -m reprolib sweep --profile {profile_argument(profile)} [--executor slurm])"
