"""The ledger: every run record flattened into one tidy pandas table.

`build_ledger(artifacts)` reads `<artifacts>/runs/*.json` (the record schema of
ARCHITECTURE.md) and returns one row per run; `write_ledger` saves it atomically as
`<artifacts>/ledger.csv`. Every table and figure of the study is drawn from this table.

Columns that hold lists (the reliability bins, the label map) are stored as JSON strings so
the CSV stays one flat file; `reliability(row)` and `label_map(row)` decode them.
Upstream facts about each ticket (upstream test accuracy) come from the tickets' own
`sparsity.json` files and are joined in as `upstream_accuracy` (imported tickets' by their
name, `ticket_name`), else the value the record stored when the run loaded its network.
`provenance` says what each network is (dense | here | oneshot | imported | external, see
reprolib.sparsity.network); records written before it existed get it inferred from their
backbone's ticket source. `ticket_source` and `published_top1` describe imported tickets.

`other_versions` names the libraries a record was made under (its `versions`) whose version is
not the running code's, e.g. "torch 2.13.0 (now 2.14.1)", empty when all agree; `build_ledger`
says in one line on stderr how many runs that is (their numbers may not reproduce here). The same
run made under another machine's CPU facts and rerun here (two records, two ids) is one row: the
one made here (reprolib.study.made_under).

Failed runs (`<id>.failed.json`, written by the sweep) are rows too, with `status` "failed",
the one-line `error` and empty metrics; finished runs have `status` "ok". `load_ledger`
returns the finished runs only (what every table and figure computes numbers from) unless
asked for the failed ones; `failed_runs(frame)` lists them.

CLI: `python -m reprolib ledger --profile P` (re)builds and saves the ledger; with
`--recompute-metrics` it first fills in every registered metric a finished run's record lacks
from the run's saved scores (reprolib.scores.recompute), checking the ones it holds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from reprolib import paths
from reprolib.errors import ReprolibError
from reprolib.scores.registry import names as metric_names
from reprolib.models.registry import get_spec
from reprolib.models.registry import names as backbone_names
from reprolib.paths import LEDGER_NAME  # noqa: F401  (re-exported: the ledger's file name)
from reprolib.records import (BAD_SUFFIX, atomic_write_bytes, is_aside_file, is_failure_file,
                              move_aside, verified_record)
from reprolib.study.made_under import one_per_run, other_versions, versions_line
from reprolib.sparsity.identity import stale_network
from reprolib.study.shipped import save_unless_losing

# Columns in the order a reader wants them; OOD columns (ood_*) follow the metrics.
ID_COLUMNS = ["id", "profile", "backbone", "target", "arm", "method", "label_map", "network",
              "ticket_kind", "level", "replicate", "density", "density_rlt", "upstream_accuracy",
              "provenance", "ticket_name", "ticket_source", "published_top1",
              "n_shot", "shots_min", "shots_max", "capped", "seed", "protocol", "split", "prompt_size",
              "legacy_ece_batch"]
# The registered scalar metrics shown in the ledger (reprolib.scores.registry), in registry order.
METRIC_COLUMNS = metric_names(place="ledger")
TAIL_COLUMNS = ["wall_time_s", "device", "cpu_capability", "cpu_threads", "other_versions", "reliability",
                "label_map_indices", "created"]
# Whether the run finished ("ok") or raised ("failed", with its one-line error).
STATUS_COLUMNS = ["status", "error"]
OK, FAILED = "ok", "failed"
# Keys under which a ticket's sparsity.json may hold its upstream test accuracy.
UPSTREAM_KEYS = ("upstream_test_accuracy", "upstream_accuracy", "test_accuracy", "accuracy")


def arm_name(method: str, label_map: str | None) -> str:
    """The sweep's name of a transfer arm: 'lp', or 'method/label_map' (e.g. 'vp/ilm')."""
    return method if not label_map else f"{method}/{label_map}"


def shot_columns(cfg: dict[str, Any]) -> dict[str, Any]:
    """shots_min / shots_max (effective images per class of a few-shot draw) and `capped` (how
    many classes had fewer than n_shot images and kept all of them; docs/methods.md s.8).
    Full-data runs: min/max empty, capped 0."""
    shots = cfg.get("effective_shots")
    if not shots:
        return {"shots_min": None, "shots_max": None, "capped": 0}
    return {"shots_min": shots.get("min"), "shots_max": shots.get("max"), "capped": len(shots.get("capped") or [])}


def run_identity(cfg: dict[str, Any], kind: str | None, level: int | None) -> dict[str, Any]:
    """The columns that say which run a row is: target, arm, method, label map, network, ticket,
    ticket replicate (1 for records written before replicates existed; docs/methods.md s.12).

    The dense network is IMP level 0 (ARCHITECTURE.md), whatever kind its record names.
    """
    label_map = cfg.get("label_map") or None
    dense = cfg.get("network") == "dense"
    return {"profile": cfg.get("profile"), "target": cfg.get("target"),
            "arm": arm_name(cfg.get("method"), label_map), "method": cfg.get("method"), "label_map": label_map,
            "network": cfg.get("network"), "ticket_kind": "imp" if dense else kind, "level": 0 if dense else level,
            "replicate": cfg.get("replicate") or 1, "n_shot": cfg.get("n_shot"), "seed": cfg.get("seed")}


def provenance_of(cfg: dict[str, Any], ticket: dict[str, Any]) -> str | None:
    """The record's provenance, or (older records) inferred: dense, external (a pretrained_dir),
    else "here" / "oneshot" as the backbone's registry spec makes tickets."""
    if ticket.get("provenance"):
        return ticket["provenance"]
    if cfg.get("network") == "dense":
        return "dense"
    if cfg.get("pretrained_dir"):
        return "external"
    if cfg.get("backbone") not in backbone_names():
        return None
    return "here" if get_spec(cfg["backbone"]).tickets == "imp" else "oneshot"


def provenance_columns(cfg: dict[str, Any], ticket: dict[str, Any]) -> dict[str, Any]:
    """provenance, ticket_name (imported tickets), ticket_source, published_top1, and the
    upstream accuracy the record stored (the tickets' reports may override it, build_ledger)."""
    return {"provenance": provenance_of(cfg, ticket),
            "ticket_name": cfg.get("pretrained_dir") if ticket.get("kind") == "imported" else None,
            "ticket_source": ticket.get("source"), "published_top1": ticket.get("published_top1"),
            "upstream_accuracy": ticket.get("upstream_accuracy")}


def record_to_row(record: dict[str, Any]) -> dict[str, Any]:
    """One ledger row from one record (ARCHITECTURE.md schema)."""
    try:
        cfg, metrics = record["config"], record["metrics"]
    except (KeyError, TypeError):
        raise ReprolibError(f"record {record.get('id', '?') if isinstance(record, dict) else record!r} "
                            "lacks 'config' or 'metrics'; valid records follow ARCHITECTURE.md") from None
    ticket = cfg.get("ticket") or {}
    protocol = cfg.get("protocol")
    row: dict[str, Any] = {
        "id": record.get("id"),
        **run_identity(cfg, ticket.get("kind"), ticket.get("level")),
        "backbone": cfg.get("backbone"),
        "density": ticket.get("density"),
        "density_rlt": ticket.get("density_rlt"),
        **provenance_columns(cfg, ticket),
        **shot_columns(cfg),
        "protocol": protocol.get("name") if isinstance(protocol, dict) else protocol,
        "split": cfg.get("split"),
        "prompt_size": cfg.get("prompt_size"),
        "legacy_ece_batch": cfg.get("legacy_ece_batch"),   # the legacy RLT "ECE"'s test batch
    }
    for name in METRIC_COLUMNS:
        row[name] = metrics.get(name)
    for name, value in (metrics.get("ood") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            row[f"ood_{name}"] = value
        elif isinstance(value, dict):   # nested per-dataset / per-score values -> ood_<a>_<b>
            for sub, v in value.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    row[f"ood_{name}_{sub}"] = v
    row["wall_time_s"] = record.get("wall_time_s")
    row["device"] = record.get("device")
    cpu = record.get("cpu") or {}   # records before the CPU pin: empty
    row["cpu_capability"], row["cpu_threads"] = cpu.get("capability"), cpu.get("threads")
    row["other_versions"] = other_versions(record.get("versions"))
    row["reliability"] = json.dumps(metrics.get("reliability")) if metrics.get("reliability") else None
    row["label_map_indices"] = json.dumps(record["label_map"]) if record.get("label_map") is not None else None
    row["created"] = record.get("created")
    row["status"], row["error"] = OK, None
    return row


def failure_to_row(failure: dict[str, Any]) -> dict[str, Any]:
    """One ledger row from one failure record: the run's identity, status 'failed', the error."""
    cfg = failure.get("config") or {}
    return {"id": failure.get("id"), **run_identity(cfg, cfg.get("kind"), cfg.get("level")),
            "protocol": cfg.get("protocol"), "created": failure.get("created"), "status": FAILED,
            "error": failure.get("error")}


def read_records(runs_dir: Path, failures: bool = False) -> list[dict[str, Any]]:
    """All sound records in `runs_dir` (records.verified_record: a bad one is moved aside, named
    in one line, and left out, so one truncated file never leaves the ledger stale); temporary
    files of writers in flight and records set aside are ignored. With `failures`, the
    failure records instead (an unreadable one is moved aside the same way)."""
    records = []
    for path in sorted(Path(runs_dir).glob("*.json")):
        if path.name.startswith(".") or is_aside_file(path) or is_failure_file(path) != failures:
            continue
        record = _read_failure(path) if failures else verified_record(path)
        if record is not None:
            records.append(record)
    return records


def current_records(runs_dir: Path, artifacts: Path) -> list[dict[str, Any]]:
    """read_records without the records whose network has been remade since they ran
    (identity.stale_network): each is named in one line and moved aside, so a sweep reruns it
    and the ledger never pairs a new network's facts with an old network's numbers; one record
    per run made under several machines' CPU facts (made_under.one_per_run)."""
    kept = []
    for record in read_records(runs_dir):
        problem = stale_network(record["config"], str(artifacts))
        if problem is None:
            kept.append(record)
        else:
            move_aside(Path(runs_dir) / f"{record['id']}.json", problem)
    return one_per_run(kept)


def _read_failure(path: Path) -> dict[str, Any] | None:
    try:
        failure = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        failure = None
    if isinstance(failure, dict) and failure.get("id"):
        return failure
    move_aside(path, "it is not a failure record (invalid JSON or no id)")
    return None


def tickets_table(artifacts: Path) -> pd.DataFrame:
    """One row per ticket folder: kind, level, ticket replicate, density, density_rlt,
    upstream_accuracy, agreement_with_dense (one-shot networks without upstream data: the share of
    the targets' test images on which their top-1 source class matches the dense network's; a
    proxy, not an accuracy; empty for tickets that have none), train_seconds and
    train_cpu_seconds (what making the level took, wall-clock and CPU; the planner's price of a
    replicate). `path` is the folder relative to
    `artifacts`, so the table is the same on every machine."""
    rows = []
    for folder in paths.ticket_dirs(artifacts):
        info = json.loads((folder / "sparsity.json").read_text())
        upstream = _upstream_of(info)
        kind, level = paths.ticket_of(folder)
        rows.append({"ticket_kind": kind, "level": level, "replicate": paths.replicate_of(folder),
                     "density": info.get("density"), "density_rlt": info.get("density_rlt"),
                     "upstream_accuracy": upstream, "agreement_with_dense": _agreement_of(info),
                     "train_seconds": info.get("train_seconds"), "train_cpu_seconds": info.get("train_cpu_seconds"),
                     "path": folder.relative_to(artifacts).as_posix()})
    columns = ["ticket_kind", "level", "replicate", "density", "density_rlt", "upstream_accuracy",
               "agreement_with_dense", "train_seconds", "train_cpu_seconds", "path"]
    return pd.DataFrame(rows, columns=columns).sort_values(["replicate", "ticket_kind", "level"], ignore_index=True)


def _agreement_of(report: dict[str, Any]) -> float | None:
    agreement = report.get("agreement_with_dense")
    return agreement.get("overall") if isinstance(agreement, dict) else None


def _upstream_of(report: dict[str, Any]) -> float | None:
    return next((report[k] for k in UPSTREAM_KEYS if isinstance(report.get(k), (int, float))), None)


def _first_measured(value: Any, fallback: Any) -> Any:
    """`value` unless it is missing (None / NaN), else `fallback`."""
    return fallback if value is None or (isinstance(value, float) and pd.isna(value)) else value


def _imported_reports(artifacts: Path) -> list[dict[str, Any]]:
    return [json.loads((d / "sparsity.json").read_text()) for d in paths.imported_ticket_dirs(artifacts)]


def build_ledger(artifacts: Path) -> pd.DataFrame:
    """The tidy table of every record under `<artifacts>/runs`, sorted, with upstream accuracy."""
    runs = paths.runs_dir(artifacts)
    rows = [record_to_row(r) for r in current_records(runs, artifacts)]
    finished = {row["id"] for row in rows}   # a failure that later succeeded is no longer a failure
    rows += [failure_to_row(f) for f in read_records(runs, failures=True) if f.get("id") not in finished]
    frame = pd.DataFrame(rows)
    for column in ID_COLUMNS + METRIC_COLUMNS + TAIL_COLUMNS + STATUS_COLUMNS:
        if column not in frame:
            frame[column] = pd.Series(dtype=object if column not in METRIC_COLUMNS else float)
    tickets = tickets_table(Path(artifacts))
    if len(frame) and len(tickets):
        upstream = tickets.set_index(["ticket_kind", "level", "replicate"])["upstream_accuracy"]
        keys = [(k, lv, r if (k, lv, r) in upstream.index or lv else 1)   # a replicate on replicate 1's dense model
                for k, lv, r in zip(frame["ticket_kind"], frame["level"], frame["replicate"].fillna(1).astype(int))]
        joined = [upstream.get(k) if k in upstream.index else None for k in keys]
        frame["upstream_accuracy"] = [_first_measured(j, r) for j, r in zip(joined, frame["upstream_accuracy"])]
    imported = {r.get("name"): _upstream_of(r) for r in _imported_reports(Path(artifacts))}
    if len(frame) and imported:
        frame["upstream_accuracy"] = [_first_measured(imported.get(n), r) if isinstance(n, str) else r
                                      for n, r in zip(frame["ticket_name"], frame["upstream_accuracy"])]
    frame = ordered_columns(frame)
    line = versions_line(frame)
    if line:
        print(line, file=sys.stderr)
    if len(frame):
        frame = frame.sort_values(["target", "arm", "ticket_kind", "level", "n_shot", "seed"],
                                  ignore_index=True, na_position="last")
    return frame


def ordered_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The ledger's columns in reading order: identity, the registered metrics (in registry order,
    asked now: a metric registered since import is placed too), OOD, tail, status; others last."""
    ood = sorted(c for c in frame.columns if c.startswith("ood_"))
    order = [c for c in ID_COLUMNS + metric_names(place="ledger") + ood + TAIL_COLUMNS + STATUS_COLUMNS
             if c in frame.columns]
    return frame[order + [c for c in frame.columns if c not in order]]


def write_ledger(frame: pd.DataFrame, artifacts: Path) -> Path:
    """Save the ledger atomically at `<artifacts>/ledger.csv`; returns the path."""
    path = paths.ledger_file(artifacts)
    atomic_write_bytes(path, frame.to_csv(index=False).encode())
    return path


def load_ledger(artifacts: Path, failed: bool = False) -> pd.DataFrame:
    """Read a saved ledger: the finished runs (the rows tables and figures take numbers from),
    with `failed` also the failed runs; a missing ledger is a one-line error saying how to build it."""
    path = paths.ledger_file(artifacts)
    if not path.exists():
        raise ReprolibError(f"no ledger at {path}; build it with `python -m reprolib ledger --profile <profile>`")
    frame = pd.read_csv(path)
    return frame if failed else finished_runs(frame)


def finished_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of runs that finished (a ledger written before failures were recorded has no status)."""
    if "status" not in frame:
        return frame
    return frame[frame["status"] != FAILED].reset_index(drop=True)


def failed_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The failed runs of a ledger: target, arm, ticket, shots, seed and the one-line error."""
    columns = ["target", "arm", "ticket_kind", "level", "n_shot", "seed", "error", "id"]
    if "status" not in frame:
        return pd.DataFrame(columns=columns)
    return frame.loc[frame["status"] == FAILED, columns].reset_index(drop=True)


def update_ledger(artifacts: Path, ship_scores: str = "", study: str = "", replace: bool = False) -> pd.DataFrame:
    """Build and save the ledger (and the tickets table beside it); with `ship_scores` (a profile's
    codec) also the scores archive of its runs (reprolib.study.shipped_scores). Returns the ledger.

    A saved table is never replaced by one that drops finished runs (tickets) of which this
    machine has no trace: no record, no record set aside (no ticket folder). Such rows came with
    the checkout (the shipped results); the saved table is kept, the new one is written beside it
    (`ledger.here.csv`, `tickets.here.csv`) and one line says so. A run whose record was set
    aside as bad leaves its row as it should. `replace` (a study retrained on purpose: notebook
    02's `retrain`) writes the ledger in place all the same."""
    artifacts = Path(artifacts)
    frame = build_ledger(artifacts)
    runs, finished = paths.runs_dir(artifacts), set(finished_runs(frame)["id"])
    def lost(row: dict) -> bool:   # a finished row of a run this machine has no trace of
        return not replace and row.get("status") != FAILED and row.get("id") not in finished and not any(
            (runs / f"{row.get('id')}{suffix}").is_file() for suffix in (".json", BAD_SUFFIX))

    written = save_unless_losing(paths.ledger_file(artifacts), frame, "finished runs", lost)
    save_unless_losing(paths.tickets_table_file(artifacts), tickets_table(artifacts), "tickets",
                       lambda row: not (artifacts / str(row.get("path"))).is_dir())
    # the archive follows the ledger: a ledger kept as shipped keeps its archive too
    if ship_scores and runs.is_dir() and written == paths.ledger_file(artifacts):
        from reprolib.study.shipped_scores import pack_study

        pack_study(artifacts, ship_scores, study, frame, read_records(runs))
    return frame


def reliability(row: pd.Series | dict[str, Any]) -> dict[str, list[float]] | None:
    """The reliability bins of a ledger row: {counts, confidence, accuracy}, or None."""
    value = row["reliability"]
    return json.loads(value) if isinstance(value, str) and value else None


def label_map(row: pd.Series | dict[str, Any]) -> list[int] | None:
    """The source-class indices a ledger row's label map selected, or None (LP)."""
    value = row["label_map_indices"]
    return json.loads(value) if isinstance(value, str) and value else None
