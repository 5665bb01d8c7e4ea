"""The sweep on a Slurm cluster through submitit: jobs that fit their time limit, arrays that fit Slurm.

The profile's `cluster:` section (ClusterOptions: partition, account, qos, constraint,
gpus_per_node, cpus_per_task, mem_gb, timeout_min, array_parallelism, max_array_size, margin),
overridden on the command line with `--slurm KEY=VALUE`, says what each job asks for.

A job is a bundle of runs whose estimated time (reprolib.sweep.cost.RunTimer) times `margin` fits
`timeout_min`: bundles are packed first-fit, longest run first, so a 10-shot run is never a
job of its own. Jobs go out as job arrays of at most `max_array_size` tasks (Slurm refuses an
array above its MaxArraySize, 1001 by default), each running `array_parallelism` at a time. A
job killed at its limit loses only its unfinished run: records are atomic, the finished ones
are read back from disk, and a rerun submits only what is missing.

`sbatch_script` renders the batch file submitit would submit for an array (submitit's own
renderer, `submitit.slurm.slurm._make_sbatch_string`, with the names submitit's SlurmExecutor
maps the options to), so the #SBATCH lines can be checked without a cluster.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from reprolib.config import Count, Positive, schema, validated
from reprolib.errors import ReprolibError, option_type

MARGIN = 1.5   # a job's estimated time x this must fit its limit (the cost model is rough)


@schema("Slurm option", "cluster option ", frozen=True)
class ClusterOptions:
    """What each Slurm job asks for (None: the cluster's default); see the module docstring."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpus_per_node: Count = 1
    cpus_per_task: Count = 8
    mem_gb: Positive = 32
    timeout_min: Count = 240
    array_parallelism: Count = 16
    max_array_size: Count = 1000
    margin: Annotated[float, Field(ge=1)] = MARGIN   # >= 1: the estimates are rough

    def submitit_parameters(self) -> dict[str, Any]:
        """AutoExecutor.update_parameters(...) names."""
        params = {"gpus_per_node": self.gpus_per_node, "cpus_per_task": self.cpus_per_task,
                  "mem_gb": self.mem_gb, "timeout_min": self.timeout_min,
                  "slurm_array_parallelism": self.array_parallelism}
        for name in ("partition", "account", "qos", "constraint"):
            if getattr(self, name) is not None:
                params[f"slurm_{name}"] = getattr(self, name)
        return params


def option_names() -> list[str]:
    return [f.name for f in dataclasses.fields(ClusterOptions)]


def cluster_options(section: dict[str, Any], overrides: Sequence[str] = ()) -> ClusterOptions:
    """The profile's `cluster:` section with `KEY=VALUE` overrides, checked by the schema: one line
    for an unknown key or a bad value ("--slurm mem_gb is 'nan'; valid: a finite number")."""
    values = dict(section)
    for item in overrides:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep:
            raise ReprolibError(f"--slurm {item!r} is not KEY=VALUE; valid keys: {', '.join(option_names())}")
        if key not in option_names():
            raise ReprolibError(f"unknown Slurm option {key!r}; valid choices: {', '.join(option_names())}")
        field_info = ClusterOptions.__pydantic_fields__[key]
        values[key] = option_type(field_info.rebuild_annotation(), f"--slurm {key}")(text.strip())
    return validated(ClusterOptions, values, "cluster")


def bundle(units: Sequence[Any], seconds: Callable[[Any], float], options: ClusterOptions,
           describe: Callable[[Any], str] = repr) -> list[list[int]]:
    """Unit indices packed into jobs, first-fit longest first, each within margin x estimate <= limit.

    A unit that alone does not fit is a one-line error naming it and the limit it needs.
    """
    limit = options.timeout_min * 60.0
    need = [options.margin * seconds(unit) for unit in units]
    order = sorted(range(len(units)), key=lambda i: (-need[i], i))
    if order and need[order[0]] > limit:
        longest = order[0]
        raise ReprolibError(f"Slurm timeout_min {options.timeout_min} is shorter than the run "
                            f"{describe(units[longest])} ({need[longest] / options.margin / 60:.0f} min estimated, x margin "
                            f"{options.margin} = {need[longest] / 60:.0f} min); valid: timeout_min >= "
                            f"{int(need[longest] // 60) + 1}")
    jobs: list[list[int]] = []
    loads: list[float] = []
    for index in order:
        slot = next((j for j, load in enumerate(loads) if load + need[index] <= limit), None)
        if slot is None:
            jobs.append([])
            loads.append(0.0)
            slot = len(jobs) - 1
        jobs[slot].append(index)
        loads[slot] += need[index]
    return jobs


def arrays(jobs: Sequence[Any], max_array_size: int) -> list[list[Any]]:
    """Jobs in consecutive arrays of at most `max_array_size`."""
    return [list(jobs[i:i + max_array_size]) for i in range(0, len(jobs), max_array_size)]


def sbatch_script(options: ClusterOptions, n_tasks: int, folder: str | Path,
                  command: str = "python -u -m submitit.core._submit FOLDER") -> str:
    """The batch file submitit's SlurmExecutor would submit for an array of `n_tasks` jobs."""
    from submitit.slurm.slurm import SlurmExecutor, _convert_mem, _make_sbatch_string

    renames = SlurmExecutor._equivalence_dict()
    params: dict[str, Any] = {}
    for key, value in options.submitit_parameters().items():
        name = key[len("slurm_"):] if key.startswith("slurm_") else key
        params[renames.get(name, name)] = value
    params["mem"] = _convert_mem(params["mem"])
    return _make_sbatch_string(command=command, folder=folder, map_count=n_tasks if n_tasks > 1 else None, **params)


class JobOfRuns:
    """What one Slurm job runs: its runs one after the other (picklable for submitit)."""

    def __init__(self, guarded: Callable[[Any], Any]):
        self.guarded = guarded

    def __call__(self, units: list[Any]) -> list[Any]:
        return [self.guarded(unit) for unit in units]
