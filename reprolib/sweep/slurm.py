"""The sweep on a Slurm cluster through submitit: one job plan, jobs that fit their limit, arrays that fit Slurm.

The profile's `cluster:` section (ClusterOptions: partition, account, qos, constraint,
gpus_per_node, cpus_per_task, mem_gb, timeout_min, array_parallelism, max_array_size, margin),
overridden on the command line with `--slurm KEY=VALUE`, says what each job asks for.

`plan_jobs` is the one plan of a Slurm sweep, which the dry run prints and the submission submits
(reprolib.sweep.cluster.plan_for adds the cluster's own limits). A unit is a run, or on CUDA a
group of prompt runs trained together (reprolib.transfer.grouped); a group whose estimate times
`margin` exceeds `timeout_min` is split into the fewest smaller groups that fit (`fit_groups`).
A job is a bundle of units whose estimated time (reprolib.sweep.cost.RunTimer) times `margin`
fits `timeout_min`: bundles are packed first-fit, longest first, so a 10-shot run is never a job
of its own. Jobs go out as job arrays of at most `max_array_size` tasks (and never above the
cluster's MaxArraySize), each running `array_parallelism` at a time. What one job runs, and how
it checkpoints at its time limit: reprolib.sweep.slurm_job.

`sbatch_script` renders the batch file submitit would submit for an array (submitit's own
renderer, `submitit.slurm.slurm._make_sbatch_string`, with the names submitit's SlurmExecutor
maps the options to), so the #SBATCH lines can be checked without a cluster (and by Slurm itself,
`sbatch --test-only`, before anything is submitted).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
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


def unit_seconds(unit: Any, seconds: Callable[..., float]) -> float:
    """A unit's estimated seconds: a run's `seconds(config)`, a group's `seconds(config, size)` summed
    (a run trained in a group of `size` bears its share of the group's steps, reprolib.sweep.cost)."""
    if isinstance(unit, list):
        return sum(seconds(config, len(unit)) for config in unit)
    return seconds(unit)


def fit_groups(units: Sequence[Any], seconds: Callable[..., float], options: ClusterOptions) -> list[Any]:
    """The units, with every group whose estimate x margin exceeds `timeout_min` split: its runs
    packed first-fit, longest first, into the fewest smaller groups that fit, each run priced as if
    alone (an upper bound: a run in a group of g bears 1/g of the small-step floor), each group in
    grid order (a group still, of one run maybe); a run that alone does not fit is `bundle`'s error."""
    limit = options.timeout_min * 60.0
    out: list[Any] = []
    for unit in units:
        if not isinstance(unit, list) or options.margin * unit_seconds(unit, seconds) <= limit:
            out.append(unit)
            continue
        alone = [options.margin * seconds(config) for config in unit]
        parts = [[unit[i] for i in sorted(part)] for part in _first_fit(alone, limit)]
        out += parts
    return out


def _first_fit(need: list[float], limit: float) -> list[list[int]]:
    """Indices packed first-fit, largest first, into bins of `limit` (an item above it: a bin alone)."""
    bins: list[list[int]] = []
    loads: list[float] = []
    for index in sorted(range(len(need)), key=lambda i: (-need[i], i)):
        slot = next((b for b, load in enumerate(loads) if load + need[index] <= limit), None)
        if slot is None:
            bins.append([])
            loads.append(0.0)
            slot = len(bins) - 1
        bins[slot].append(index)
        loads[slot] += need[index]
    return bins


def bundle(units: Sequence[Any], seconds: Callable[..., float], options: ClusterOptions,
           describe: Callable[[Any], str] = repr) -> list[list[int]]:
    """Unit indices packed into jobs, first-fit longest first, each within margin x estimate <= limit
    (`unit_seconds` prices a unit).

    A unit that alone does not fit is a one-line error naming it and the limit it needs.
    """
    limit = options.timeout_min * 60.0
    need = [options.margin * unit_seconds(unit, seconds) for unit in units]
    longest = max(range(len(units)), key=lambda i: (need[i], -i), default=None)
    if longest is not None and need[longest] > limit:
        raise ReprolibError(f"Slurm timeout_min {options.timeout_min} is shorter than the run "
                            f"{describe(units[longest])} ({need[longest] / options.margin / 60:.0f} min estimated, x margin "
                            f"{options.margin} = {need[longest] / 60:.0f} min); valid: timeout_min >= "
                            f"{int(need[longest] // 60) + 1}")
    return _first_fit(need, limit)


@dataclass(frozen=True)
class JobPlan:
    """What goes to Slurm: the units (oversized groups split), the jobs (unit indices), each job's
    estimated seconds, and the arrays (job indices, at most `array_size` each)."""

    units: list[Any]
    jobs: list[list[int]]
    seconds: list[float]
    array_size: int
    timeout_min: int
    limits: str | None = None      # what the cluster allows (reprolib.sweep.cluster), when it was asked

    @property
    def arrays(self) -> list[list[int]]:
        return arrays(list(range(len(self.jobs))), self.array_size)

    def describe(self, margin: float) -> str:
        """The dry run's line about the jobs (the submission prints the same counts)."""
        runs = sum(len(u) if isinstance(u, list) else 1 for u in self.units)
        groups = sum(isinstance(u, list) and len(u) > 1 for u in self.units)
        grouped = f" ({groups} groups of prompt runs trained together)" if groups else ""
        longest = max(self.seconds, default=0.0)
        return (f"slurm: {runs} runs{grouped} in {len(self.jobs)} jobs, {len(self.arrays)} array(s) of at most "
                f"{self.array_size} (largest {max(map(len, self.arrays), default=0)}); longest job "
                f"{_minutes(longest)} estimated, x margin {margin} = {_minutes(margin * longest)} "
                f"<= timeout_min {self.timeout_min}" + (f"\n{self.limits}" if self.limits else ""))


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 600 else f"{seconds / 60:.1f} min"


def plan_jobs(units: Sequence[Any], seconds: Callable[..., float], options: ClusterOptions,
              describe: Callable[[Any], str] = repr, array_size: int | None = None) -> JobPlan:
    """The one plan of a Slurm sweep, for the dry run and the submission alike: oversized groups
    split (`fit_groups`), units bundled into jobs (`bundle`), jobs into arrays of at most
    `array_size` (default `max_array_size`; the submission passes the cluster's cap too)."""
    units = fit_groups(units, seconds, options)
    jobs = bundle(units, seconds, options, describe)
    estimates = [sum(unit_seconds(units[i], seconds) for i in job) for job in jobs]
    return JobPlan(units, jobs, estimates, array_size or options.max_array_size, options.timeout_min)


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
