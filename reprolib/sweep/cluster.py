"""What the Slurm cluster allows, read and checked before anything is submitted.

`check(options, script)` runs on the submitting machine (a login node) before the first
`sbatch`, and the dry run calls it too, so both see the same limits:

- `scontrol show config`: MaxArraySize (an array's tasks must not exceed it) and whether
  slurmctld answers at all ("Slurm is not reachable: ...");
- `scontrol -o show partition [NAME]`: the partition (the named one, else the default) and its
  MaxTime. A `timeout_min` above MaxTime is refused here: with Slurm's default EnforcePartLimits=NO,
  sbatch accepts such a job and it pends for ever (reason PartitionTimeLimit). A named QOS's
  MaxWall (`sacctmgr show qos`) caps it the same way;
- `sbatch --test-only` on the batch script submitit will submit (the largest array): Slurm's own
  verdict on the partition, account, gres, memory, CPUs, constraint and array size, without
  submitting. Its refusal is one line naming the values asked for and what Slurm said.

Slurm 22.05's `scontrol` has no `--json`, so the text is parsed (tests/slurm/README.md: what a
real Slurm prints, measured). Every failure is a ReprolibError: one line, exit 2, nothing submitted.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from reprolib.errors import ReprolibError
from reprolib.sweep import slurm

TIMEOUT_S = 60   # slurmctld down: sbatch gives up after about 9 s of retries

# What sbatch's refusal names -> the options that asked for it (first match wins).
REFUSALS = (("account", ("account", "partition")), ("partition", ("partition",)),
            ("generic resource", ("gpus_per_node",)), ("gres", ("gpus_per_node",)),
            ("feature", ("constraint",)), ("qos", ("qos",)), ("array", ("max_array_size",)),
            ("memory", ("mem_gb",)), ("node configuration", ("gpus_per_node", "cpus_per_task", "mem_gb")),
            ("processors", ("cpus_per_task",)))


@dataclass(frozen=True)
class Limits:
    """The cluster's limits for the sweep's jobs."""

    partition: str
    max_time_min: int | None       # None: UNLIMITED
    max_array_size: int
    nodes: str                     # the partition's nodes: 'CPUs/memory MB/gres' per node kind

    def describe(self) -> str:
        limit = "UNLIMITED" if self.max_time_min is None else f"{self.max_time_min} min"
        return (f"slurm limits: partition {self.partition} (MaxTime {limit}; nodes {self.nodes}), "
                f"MaxArraySize {self.max_array_size}")


def available() -> bool:
    """Whether this machine has Slurm's commands (a login node, or the test cluster)."""
    return shutil.which("sbatch") is not None and shutil.which("scontrol") is not None


def plan_for(units: list[Any], seconds: Any, options: Any, describe: Any, folder: Any,
             on_cluster: bool) -> slurm.JobPlan:
    """The sweep's job plan (reprolib.sweep.slurm.plan_jobs) with, on a real Slurm, its arrays capped by
    MaxArraySize and the largest array's batch script checked (`check`) before anything is submitted.
    The dry run and the submission both call this, so they plan and refuse the same.

    Many parameters because each is one input of the plan.
    """
    limits = read_limits(options.partition) if on_cluster else None
    cap = min(options.max_array_size, limits.max_array_size) if limits else options.max_array_size
    plan = slurm.plan_jobs(units, seconds, options, describe, cap)
    if limits is not None and plan.jobs:
        check(options, slurm.sbatch_script(options, max(map(len, plan.arrays)), folder), limits)
    return dataclasses.replace(plan, limits=limits.describe()) if limits is not None else plan


def check(options: Any, script: str, limits: Limits | None = None) -> Limits:
    """The limits, after checking that Slurm would run the jobs `options` ask for (module docstring)."""
    limits = limits or read_limits(options.partition)
    caps = [(f"partition {limits.partition}'s MaxTime", limits.max_time_min)]
    if options.qos:
        caps.append((f"QOS {options.qos}'s MaxWall", qos_max_wall(options.qos)))
    for what, cap in caps:
        if cap is not None and options.timeout_min > cap:
            raise ReprolibError(f"--slurm timeout_min {options.timeout_min} is above {what} ({cap} min): Slurm "
                                f"would queue the jobs and never start them; valid: timeout_min <= {cap}")
    done = _run(["sbatch", "--test-only"], stdin=script)
    if done.returncode != 0:
        said = _last_line(done.stderr or done.stdout)
        if "contact slurm controller" in said:
            raise ReprolibError(f"Slurm is not reachable: sbatch says {said!r}")
        asked = ", ".join(f"{name}={getattr(options, name)!r}" for name in _named(said))
        raise ReprolibError(f"Slurm refuses {asked} (sbatch --test-only: {said!r}); partition "
                            f"{limits.partition} has nodes {limits.nodes}")
    return limits


def read_limits(partition: str | None) -> Limits:
    """MaxArraySize, and the partition's (or the default partition's) MaxTime and nodes."""
    config = _run(["scontrol", "show", "config"])
    if config.returncode != 0:
        raise ReprolibError(f"Slurm is not reachable: scontrol show config says {_last_line(config.stderr)!r}")
    found = re.search(r"^MaxArraySize\s*=\s*(\d+)", config.stdout, re.M)
    max_array = int(found.group(1)) if found else 1001   # Slurm's default
    shown = _run(["scontrol", "-o", "show", "partition", *([partition] if partition else [])])
    if shown.returncode != 0:
        names = [p["PartitionName"] for p in _partitions(_run(["scontrol", "-o", "show", "partition"]).stdout)]
        raise ReprolibError(f"--slurm partition {partition!r}: Slurm says {_last_line(shown.stderr or shown.stdout)!r}; "
                            f"valid choices: {', '.join(names) or '(none)'}")
    partitions = _partitions(shown.stdout)
    chosen = partitions[0] if partition else next((p for p in partitions if p.get("Default") == "YES"), None)
    if chosen is None:
        raise ReprolibError("Slurm has no default partition; valid: --slurm partition=NAME, one of "
                            + ", ".join(p["PartitionName"] for p in partitions))
    return Limits(chosen["PartitionName"], parse_minutes(chosen.get("MaxTime", "UNLIMITED")), max_array,
                  _nodes(chosen["PartitionName"]))


def queued() -> set[str] | None:
    """The ids of this user's jobs that Slurm still holds (pending, held, running, completing), array
    tasks one by one ('12_3'); None when squeue does not answer. A pending array task cancelled
    with scancel leaves no accounting record at all, so only its absence here says it is gone."""
    try:
        shown = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-u", str(os.getuid())], capture_output=True,
                               text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return set(shown.stdout.split()) if shown.returncode == 0 else None


def qos_max_wall(qos: str) -> int | None:
    """A QOS's MaxWall in minutes (None: none set, or the QOS is unknown to sacctmgr)."""
    shown = _run(["sacctmgr", "-n", "-P", "show", "qos", qos, "format=name,maxwall"])
    for line in shown.stdout.splitlines():
        name, _, wall = line.partition("|")
        if name.strip() == qos and wall.strip():
            return parse_minutes(wall.strip())
    return None


def parse_minutes(text: str) -> int | None:
    """Slurm's time in whole minutes (seconds dropped): 'UNLIMITED' -> None; 'M', 'M:S', 'H:M:S',
    'D-H', 'D-H:M', 'D-H:M:S'."""
    text = text.strip()
    if text.upper() in ("UNLIMITED", "INFINITE", "NONE", ""):
        return None
    days, dash, clock = text.partition("-")
    if not dash:
        days, clock = "0", text
    parts = [int(p) for p in clock.split(":")]
    if dash:   # D-H[:M[:S]]
        hours, minutes = parts[0], parts[1] if len(parts) > 1 else 0
    elif len(parts) == 3:
        hours, minutes = parts[0], parts[1]
    else:      # M or M:S
        hours, minutes = 0, parts[0]
    return (int(days) * 24 + hours) * 60 + minutes


def _partitions(text: str) -> list[dict[str, str]]:
    return [dict(token.split("=", 1) for token in line.split() if "=" in token)
            for line in text.splitlines() if line.startswith("PartitionName=")]


def _nodes(partition: str) -> str:
    """'2 CPUs, 24105 MB, gpu:2' for each kind of node in the partition (sinfo)."""
    shown = _run(["sinfo", "-h", "-p", partition, "-o", "%c|%m|%G"])
    kinds = []
    for line in dict.fromkeys(shown.stdout.split("\n")):
        if line.count("|") == 2:
            cpus, memory, gres = line.split("|")
            kinds.append(f"{cpus} CPUs, {memory} MB, {gres if gres != '(null)' else 'no gres'}")
    return "; ".join(kinds) or "unknown"


def _named(said: str) -> tuple[str, ...]:
    lowered = said.lower()
    return next((names for phrase, names in REFUSALS if phrase in lowered),
                ("partition", "account", "gpus_per_node", "cpus_per_task", "mem_gb"))


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    line = lines[-1] if lines else "no output"
    return re.sub(r"^(sbatch: error: |allocation failure: )", "", line)


def _run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S)
    except FileNotFoundError:
        raise ReprolibError(f"no Slurm here ({args[0]} not found); run on a Slurm login node") from None
    except subprocess.TimeoutExpired:
        raise ReprolibError(f"Slurm is not reachable: {' '.join(args[:3])} did not answer in {TIMEOUT_S} s") from None
