"""What a run record was made under, against the running code and machine: library versions and CPU facts.

Library versions (records.versions) are recorded in every record, not hashed into its id
(hashing them would retrain every run on each upgrade): `other_versions` names, per record, the
libraries whose version is not the running code's, and `versions_line` says in one line how many
of a ledger's runs that is. The CPU facts are hashed (determinism.kernel_facts), so a run made on
another machine and rerun here has two records, two ids: `one_per_run` keeps one of them for the
ledger (docs/reproducibility.md).
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import pandas as pd

from reprolib.determinism import kernel_facts
from reprolib.records import record_id, versions


@functools.lru_cache(maxsize=1)
def _running_versions() -> dict[str, str]:
    return versions()


def other_versions(recorded: Any) -> str | None:
    """The libraries a record was made under whose version is not the running code's, e.g.
    'torch 2.13.0 (now 2.14.1)'; None when every recorded version is the running one."""
    now = _running_versions()
    differ = [f"{name} {version} (now {now[name]})" for name, version in sorted((recorded or {}).items())
              if name in now and str(version) != now[name]]
    return "; ".join(differ) or None


def versions_line(frame: pd.DataFrame) -> str | None:
    """One line naming how many finished runs were made under other versions than this code."""
    flagged = frame["other_versions"].dropna() if "other_versions" in frame else []
    if not len(flagged):
        return None
    names = sorted({part.split(" (now")[0] for cell in flagged for part in cell.split("; ")})
    return (f"ledger: {len(flagged)} of {len(frame)} runs were made under other versions than this code "
            f"({', '.join(names)}; column other_versions); a rerun may not reproduce their numbers")


def one_per_run(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per run: records whose descriptions differ only in the CPU facts (a run made on
    another machine, then rerun here under its own id) are one run; the ledger keeps the one made
    under this machine's facts (determinism.kernel_facts), else the newest, and says in one line
    how many it left out (they stay in runs/, sound)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        config = record["config"]
        groups.setdefault(record_id({k: v for k, v in config.items() if k != "cpu_kernels"}), []).append(record)
    kept, left_out = [], 0
    for group in groups.values():
        if len(group) > 1:
            here = [r for r in group if r["config"].get("cpu_kernels") == kernel_facts(r["config"].get("device"))]
            left_out += len(group) - 1
            group = here or sorted(group, key=lambda r: str(r.get("created")))
        kept.append(group[-1])
    if left_out:
        print(f"ledger: {left_out} records left out: the same runs made under other CPU facts than this machine's "
              "(another id each); the ledger shows the one made here, else the newest", file=sys.stderr)
    return kept
