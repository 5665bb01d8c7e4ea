"""`python -m reprolib ledger`: rebuild a study's ledger from its run records (reprolib.study.ledger),
after filling in new metrics from the runs' saved scores (--recompute-metrics), or, in a clone
(no runs/), from the study's shipped scores archive (reprolib.study.shipped_scores)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reprolib import paths
from reprolib.errors import ReprolibError
from reprolib.records import check_output_dir
from reprolib.study.ledger import finished_runs, ordered_columns, read_records, update_ledger, write_ledger


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reprolib.config import profile_help

    parser.add_argument("--profile", default="embedded", help=profile_help())
    parser.add_argument("--artifacts", default=None, help="override the profile's artifacts folder")
    parser.add_argument("--recompute-metrics", action="store_true",
                        help="first fill in every registered metric a finished run lacks, from its saved scores "
                             "(in a clone: from the study's shipped scores archive, into the ledger)")


def _study(args: argparse.Namespace) -> tuple[Any, Path]:
    """The profile and the artifacts folder the command works on, checked: a folder that exists and
    can be written."""
    from reprolib.config import load_profile

    profile = load_profile(args.profile)
    # A folder typed on the command line is taken from where the user stands, like any CLI path.
    artifacts = Path(args.artifacts).resolve() if args.artifacts else profile.path("artifacts")
    if not artifacts.is_dir():   # a typo must not leave an empty folder and an empty ledger behind
        raise ReprolibError(f"--artifacts {artifacts} is not a folder; valid: the artifacts folder of a "
                            f"profile (e.g. {profile.path('artifacts')}), which holds runs/")
    return profile, check_output_dir(artifacts, "--artifacts")


def results_folders(args: argparse.Namespace) -> list[Path]:
    """The runs folder whose records the ledger reads, moves aside and tabulates (locked: reprolib.cli)."""
    runs = paths.runs_dir(_study(args)[1])
    return [runs] if runs.is_dir() else []


def run(args: argparse.Namespace) -> int:
    profile, artifacts = _study(args)
    ok = True
    runs = paths.runs_dir(artifacts)
    if getattr(args, "recompute_metrics", False) and not runs.is_dir():
        return _backfill_from_archive(artifacts)
    if getattr(args, "recompute_metrics", False):
        from reprolib.scores.recompute import recompute_runs

        report = recompute_runs(runs, read_records(runs))
        print("\n".join(report.lines()))
        ok = report.ok
    if paths.ledger_file(artifacts).is_file() and not any(runs.glob("*.json") if runs.is_dir() else ()):
        # a shipped ledger without its run records (a fresh clone) must not be rebuilt as empty
        raise ReprolibError(f"no run records under {runs}, so the ledger {paths.ledger_file(artifacts)} is kept as "
                            f"it is; valid: run the sweep first (python -m reprolib sweep --profile {args.profile})")
    frame = update_ledger(artifacts, ship_scores=profile.ship_scores, study=profile.profile)
    print(f"ledger: {len(frame)} runs -> {paths.ledger_file(artifacts)}")
    return 0 if ok else 1


def _backfill_from_archive(artifacts: Path) -> int:
    """A clone (no runs/): the metrics the ledger lacks, from the shipped scores archive
    (reprolib.study.shipped_scores); the ledger is rewritten only when every value was computed."""
    from reprolib.study.shipped_scores import backfill

    frame, filled = backfill(artifacts)
    if filled:
        write_ledger(ordered_columns(frame), artifacts)
    print(f"recompute-metrics: {len(finished_runs(frame))} runs from the scores archive: filled in "
          f"{', '.join(filled) or 'nothing new'}\nledger: {len(frame)} runs -> {paths.ledger_file(artifacts)}")
    return 0
