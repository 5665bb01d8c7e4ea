"""The sweep's submitit path, and what a run hands back instead of raising.

`Guarded` wraps a runner so that any Exception of one run comes back as a `Raised` value (its
one-line error and traceback) instead of ending the sweep; worker processes and submitit jobs
run the same guarded runner, so every executor produces the same records.

`run_submitit` submits the runs that have no record yet as the dry run's job plan
(reprolib.sweep.slurm.plan_jobs; on Slurm the cluster's limits checked first, reprolib.sweep.cluster),
each job a reprolib.sweep.slurm_job.JobOfRuns that checkpoints at its time limit and is requeued.
It watches the jobs itself (a forced `sacct` every few seconds at first, at most once a minute
later, and `squeue` for jobs that vanished without an accounting record): a job that died from
outside (scancel, node loss, killed at its limit) has its runs that left no record resubmitted
at once, at most RESUBMITS times, and only then are they failures with the job's error.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprolib import devices
from reprolib.sweep import cluster, slurm, slurm_job
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
            if type(err).__module__.startswith("submitit"):   # the job's end (requeued too often), not the run's
                raise
            return Raised(one_line_error(err), traceback.format_exc())


def run_submitit(units: list[Any], guarded: Guarded, options: SubmititOptions, verbose: bool, settle,
                 seconds: Callable[..., float], records_on_disk: bool,
                 describe: Callable[[Any], str] = repr) -> dict[int, Any]:
    """Submit the units missing a record as job arrays of bundled runs (reprolib.sweep.slurm.plan_jobs,
    the dry run's plan); each job runs the same guarded runner, so records are identical. On Slurm
    the cluster's limits are checked first (reprolib.sweep.cluster: one line, nothing submitted).
    A job that died from outside (scancel, node failure, killed at its limit) has its units that
    left no record resubmitted, at most RESUBMITS times; then they fail with the job's error.

    Many parameters because it is reprolib.sweep.runner.run_sweep's submitit branch, given what run_sweep resolved.
    """
    import submitit   # optional dependency: only a submitit sweep needs it

    if options.cluster is not None:
        check_choice("submitit cluster", options.cluster, CLUSTERS)
    where = options.cluster or submitit.AutoExecutor.which()
    gpu_jobs = where == "slurm" and options.options.gpus_per_node > 0
    with devices.jobs_run_on("cuda") if gpu_jobs else contextlib.nullcontext():
        return _run_jobs(submitit, where, units, guarded, options, verbose, settle, seconds, records_on_disk,
                         describe)


def _run_jobs(submitit: Any, where: str, units: list[Any], guarded: Guarded, options: SubmititOptions,
              verbose: bool, settle, seconds: Callable[..., float], records_on_disk: bool,
              describe: Callable[[Any], str]) -> dict[int, Any]:
    """run_submitit's work, on the cluster `where` (module docstring).

    Many parameters because it is run_submitit's body, given what run_submitit resolved.
    Long because it is one loop of submission rounds over a few steps each.
    """
    settled = {}
    missing = [i for i, unit in enumerate(units) if not (records_on_disk and _on_disk(unit))]
    for index in sorted(set(range(len(units))) - set(missing)):
        settled[index] = settle(units[index], guarded(units[index]))   # reads the finished record
    if not missing:
        return settled
    folder = Path(options.folder or _log_folder(units))
    plan = cluster.plan_for([units[i] for i in missing], seconds, options.options, describe, folder,
                            on_cluster=where == "slurm")
    executor = _executor(submitit, options, folder, where, max(map(len, plan.jobs)))
    errors: dict[int, Raised] = {}
    rounds = dict.fromkeys(missing, 0)
    pending = _submit(executor, guarded, describe, units, [[missing[i] for i in job] for job in plan.jobs],
                      plan.array_size)
    if verbose:
        _say_submitted(units, pending, len(plan.arrays), executor.cluster, folder, 0)
    for job_units, job, gone in _as_finished(pending, on_slurm=where == "slurm"):
        died = []
        for index, outcome in _outcomes(job, job_units, units, records_on_disk, errors, gone):
            if outcome is None and rounds[index] < RESUBMITS:
                died.append(index)
            else:   # a record or a failure; or died RESUBMITS + 1 times: the job's error is the run's
                settled[index] = settle(units[index], errors[index] if outcome is None else outcome)
        if died:   # resubmitted at once, while the rest of the sweep's jobs run
            for index in died:
                rounds[index] += 1
            again = slurm.plan_jobs([units[i] for i in died], seconds, options.options, describe, plan.array_size)
            added = _submit(executor, guarded, describe, units, [[died[i] for i in job] for job in again.jobs],
                            plan.array_size)
            if verbose:
                _say_submitted(units, added, len(again.arrays), executor.cluster, folder, max(rounds[i] for i in died))
            pending += added
    return settled


RESUBMITS = 2   # times the unfinished units of jobs that died from outside are resubmitted


def _executor(submitit: Any, options: SubmititOptions, folder: Path, where: str, largest_job: int) -> Any:
    """The submitit executor with the jobs' parameters. A job is requeued after the pre-timeout
    signal at most `max_num_timeout` times: once per unit of the largest job (3 at least) suffices
    when each start finishes at least one unit, which the plan makes likely (each unit fits the limit)."""
    timeouts = max(3, largest_job)
    executor = submitit.AutoExecutor(folder=str(folder), cluster=where, slurm_max_num_timeout=timeouts,
                                     local_max_num_timeout=timeouts)
    params = options.options.submitit_parameters() if where == "slurm" else \
        {"timeout_min": options.options.timeout_min}
    executor.update_parameters(**params, **options.slurm)
    return executor


def _submit(executor: Any, guarded: Guarded, describe: Callable[[Any], str], units: list[Any],
            jobs: list[list[int]], array_size: int) -> list[tuple[list[int], Any]]:
    """Each job (unit indices) submitted as one task of an array of at most `array_size` tasks.

    Many parameters because each is one thing run_submitit resolved.
    """
    submitted = []
    for array in slurm.arrays(jobs, array_size):
        submitted += zip(array, executor.map_array(slurm_job.JobOfRuns(guarded, describe),
                                                   [slurm_job.Deferred([units[i] for i in job]) for job in array]))
    return submitted


def _as_finished(pending: list[tuple[list[int], Any]], on_slurm: bool = False):
    """(units, job, gone) of the pairs in `pending` as their jobs finish (pairs the caller adds
    meanwhile too): result files looked for every few seconds at first and every 30 s later; one
    forced `sacct` for all jobs (submitit's watcher) every 2 s at first, at most once a minute later,
    so a job that died is noticed within a minute. On Slurm a job that squeue no longer lists and
    that left no result within RESULT_WAIT_S is `gone`: a pending array task cancelled with scancel
    leaves no accounting record, and submitit would wait for it for ever."""
    started, forced, missing_since = time.monotonic(), float("-inf"), {}
    while pending:
        now = time.monotonic()
        elapsed = now - started
        if elapsed - forced >= min(60.0, max(2.0, elapsed / 10)):
            pending[0][1].done(force_check=True)
            forced = elapsed
            held = cluster.queued() if on_slurm else None
            for _, job in pending if held is not None else ():
                if job.job_id not in held:
                    missing_since.setdefault(id(job), now)
        finished = []
        for job_units, job in pending:
            gone = now - missing_since.get(id(job), now) >= RESULT_WAIT_S
            if job.done() or gone:
                finished.append((job_units, job, gone and not job.done()))
        pending[:] = [pair for pair in pending if all(pair[1] is not job for _, job, _ in finished)]
        yield from finished
        if pending:
            time.sleep(min(30.0, max(1.0, elapsed / 20)))


RESULT_WAIT_S = 15   # as submitit waits for a result file after the job ended (a shared filesystem's lag)


def _outcomes(job: Any, job_units: list[int], units: list[Any], records_on_disk: bool,
              errors: dict[int, Raised], gone: bool = False):
    """(unit index, outcome) of a finished job; outcome None for a unit of a job that died from
    outside before writing its record (to be resubmitted; its error kept in `errors`).

    Many parameters because each is one thing run_submitit tracks.
    """
    from submitit.core.utils import UncompletedJobError

    try:
        if gone:
            raise UncompletedJobError(f"Job {job.job_id} ended without a result: Slurm no longer holds it and "
                                      "sacct has no record of it (cancelled before it started)")
        outcomes = job.result()
    except UncompletedJobError as err:   # no result at all: cancelled, killed, node failure
        for index in job_units:
            found = _recorded_or(units[index], None, records_on_disk)
            errors[index] = Raised(one_line_error(err), str(err))
            yield index, (None if found is None or _incomplete(found) else found)
        return
    except Exception as err:   # the job raised outside the runner (requeued too often, an unpicklable unit)
        outcomes = [_recorded_or(units[i], Raised(one_line_error(err), str(err)), records_on_disk)
                    for i in job_units]
    yield from zip(job_units, outcomes)


def _incomplete(found: Any) -> bool:
    return isinstance(found, list) and any(one is None for one in found)


def _say_submitted(units: list[Any], submitted: list[tuple[list[int], Any]], arrays: int, where: str,
                   folder: Path, attempt: int) -> None:
    runs = sum(len(units[i]) if isinstance(units[i], list) else 1 for job, _ in submitted for i in job)
    count = sum(len(job) for job, _ in submitted)
    grouped = f" ({count} groups or single runs)" if runs != count else ""
    again = f"resubmitted (round {attempt} of {RESUBMITS}: their jobs died) " if attempt else "submitted "
    print(f"{again}{runs} runs{grouped} as {len(submitted)} jobs in {arrays} array(s) to submitit ({where}); "
          f"logs in {folder}", flush=True)


def _on_disk(unit: Any) -> bool:
    try:
        # finished, and its OOD stage complete (else a job scores the missing sets on the cluster's devices)
        return all(existing_record(config) is not None and not ood_stage_missing(config)
                   for config in (unit if isinstance(unit, list) else [unit]))
    except Exception:   # a config that does not resolve runs (and fails) in its job
        return False


def _recorded_or(unit: Any, raised: Raised | None, records_on_disk: bool) -> Any:
    """A unit's records when its dead job wrote them before dying, else `raised` (per run of a group)."""
    if isinstance(unit, list):
        return [_recorded_or(config, raised, records_on_disk) for config in unit]
    found = existing_record(unit) if records_on_disk and _on_disk(unit) else None
    return found if found is not None else raised


def _log_folder(units: list[Any]) -> Path:
    first = units[0][0] if units and isinstance(units[0], list) else (units[0] if units else None)
    results = getattr(first, "results_path", None)
    return Path(results).parent / "submitit" if results else Path("submitit")
