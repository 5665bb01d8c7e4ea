"""Tables that came with the checkout are not replaced by tables that drop what this machine lacks.

A checkout ships a study's `ledger.csv` and `tickets.csv` without the run records and tickets
behind them. `save_unless_losing` writes a rebuilt table over the saved one unless the saved one
has rows the new one lacks and nothing here can bring back (reprolib.study.ledger.update_ledger
says which: no record and no record set aside; no ticket folder). Then the saved table stays,
the new one goes beside it (`<name>.here.csv`, which git ignores) and one line says so.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from reprolib.records import atomic_write_bytes


def save_unless_losing(path: Path, frame: pd.DataFrame, what: str, would_lose: Callable[[dict], bool]) -> Path:
    """Write `frame` at `path` unless the table saved there has rows that `would_lose(row)` says
    `frame` lacks and nothing here can bring back; then write it beside, and say so."""
    saved = pd.read_csv(path) if path.is_file() and path.stat().st_size else None
    lost = [] if saved is None else [row for row in saved.to_dict("records") if would_lose(row)]
    if not lost:
        return atomic_write_bytes(path, frame.to_csv(index=False).encode())
    beside = path.with_name(f"{path.stem}.here.csv")
    atomic_write_bytes(beside, frame.to_csv(index=False).encode())
    print(f"note: kept {path}: it holds {len(lost)} {what} that are not here (shipped with the checkout?), which "
          f"the table of this machine's results would drop; that table is {beside}", file=sys.stderr, flush=True)
    return beside
