"""The sweep's submitit path, and what a run hands back instead of raising.

`Guarded` wraps a runner so that any Exception of one run comes back as a `Raised` value (its
one-line error and traceback) instead of ending the sweep; worker processes and submitit jobs
run the same guarded runner, so every executor produces the same records.

`run_submitit` submits the runs that have no record yet as job arrays of bundled runs
(reprolib.sweep.slurm: each job fits its time limit, each array fits max_array_size); a job that died
(its time limit, an OOM kill, node loss) fails only those of its runs that left no record.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprolib.sweep import slurm
from reprolib.errors import check_choice
from reprolib.records import one_line_error
from reprolib.transfer.run import existing_record, ood_stage_missing

CLUSTERS = ("slurm", "local", "debug")   # submitit cluster names; None = auto-detect


@dataclass(frozen=True)
class SubmititOptions:
    """Where and how `executor="submitit"` submits the job array.

    `folder` holds the job logs (default `<results_path>/../submitit`); `cluster` is a
    submitit cluster name (None = auto-detect); `options` what each job asks for and how runs
    are bundled and arrays chunked (reprolib.sweep.slurm.ClusterOptions, from the profile's
    `cluster:` section); `slurm` extra submitit executor parameters, passed as they are.
    """

    folder: str | Path | None = None
    cluster: str | None = None
    options: slurm.ClusterOptions = field(default_factory=slurm.ClusterOptions)
    slurm: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Raised:
    """What a guarded runner returns instead of raising: the error line and the traceback."""

    error: str
    traceback: str


class Guarded:
    """The runner, with any Exception turned into a Raised value (picklable for workers and
    submitit; KeyboardInterrupt and SystemExit still propagate and stop the sweep)."""

    def __init__(self, runner: Callable[[Any], dict]):
        self.runner = runner

    def __call__(self, config: Any) -> dict | Raised:
        try:
            return self.runner(config)
        except Exception as err:   # any failure of one run is that run's failure, not the sweep's
            return Raised(one_line_error(err), traceback.format_exc())


def run_submitit(units: list[Any], guarded: Guarded, options: SubmititOptions, verbose: bool, settle,
                 seconds: Callable[[Any], float], records_on_disk: bool,
                 describe: Callable[[Any], str] = repr) -> dict[int, Any]:
    """Submit the units missing a record as job arrays of bundled runs (reprolib.sweep.slurm); each job
    runs the same guarded runner, so records are identical. A job that died (its time limit, an
    OOM kill, node loss) fails only its runs that left no record.

    Many parameters because it is reprolib.sweep.runner.run_sweep's submitit branch, given what run_sweep resolved.
    """
    import submitit   # optional dependency: only a submitit sweep needs it

    if options.cluster is not None:
        check_choice("submitit cluster", options.cluster, CLUSTERS)
    settled = {}
    missing = [i for i, unit in enumerate(units) if not (records_on_disk and _on_disk(unit))]
    for index in set(range(len(units))) - set(missing):
        settled[index] = settle(units[index], guarded(units[index]))   # reads the finished record
    jobs = slurm.bundle([units[i] for i in missing], seconds, options.options, describe)
    jobs = [[missing[i] for i in job] for job in jobs]
    folder = options.folder or _log_folder(units)
    executor = submitit.AutoExecutor(folder=str(folder), cluster=options.cluster)
    params = options.options.submitit_parameters() if executor.cluster == "slurm" else \
        {"timeout_min": options.options.timeout_min}
    executor.update_parameters(**params, **options.slurm)
    submitted = []
    for array in slurm.arrays(jobs, options.options.max_array_size):
        submitted += zip(array, executor.map_array(slurm.JobOfRuns(guarded), [[units[i] for i in job]
                                                                               for job in array]))
    if verbose and submitted:
        runs = sum(len(units[i]) if isinstance(units[i], list) else 1 for i in missing)
        grouped = f" ({len(missing)} groups or single runs)" if runs != len(missing) else ""
        print(f"submitted {runs} runs{grouped} as {len(submitted)} jobs to submitit ({executor.cluster}); "
              f"logs in {folder}", flush=True)
    for job_units, job in submitted:
        try:
            outcomes = job.result()
        except Exception as err:   # the job died outside the runner (time limit, OOM kill, node loss)
            outcomes = [_recorded_or(units[i], Raised(one_line_error(err), str(err)), records_on_disk)
                        for i in job_units]
        for index, outcome in zip(job_units, outcomes):
            settled[index] = settle(units[index], outcome)
    return settled


def _on_disk(unit: Any) -> bool:
    try:
        # finished, and its OOD stage complete (else a job scores the missing sets on the cluster's devices)
        return all(existing_record(config) is not None and not ood_stage_missing(config)
                   for config in (unit if isinstance(unit, list) else [unit]))
    except Exception:   # a config that does not resolve runs (and fails) in its job
        return False


def _recorded_or(unit: Any, raised: Raised, records_on_disk: bool) -> Any:
    """A unit's records when its dead job wrote them before dying, else the job's error."""
    if isinstance(unit, list):
        return [_recorded_or(config, raised, records_on_disk) for config in unit]
    found = existing_record(unit) if records_on_disk and _on_disk(unit) else None
    return found if found is not None else raised


def _log_folder(units: list[Any]) -> Path:
    first = units[0][0] if units and isinstance(units[0], list) else (units[0] if units else None)
    results = getattr(first, "results_path", None)
    return Path(results).parent / "submitit" if results else Path("submitit")
