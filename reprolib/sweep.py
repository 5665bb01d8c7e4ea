"""The sweep: the profile's grid of transfer runs, run resumably in-process or through submitit.

`build_grid(profile)` lists one TransferConfig per run: targets x arms ("lp" or
"method/label_map") x tickets (dense = IMP level 0, the IMP levels, and each baseline kind
at `baseline_level`) x n-shots x seeds; full-data runs (n_shot = -1) use
`profile.full_data_seeds`, few-shot runs `profile.seeds`.

`run_sweep(configs)` runs each through `reprolib.transfer.run_transfer`, which writes its
record atomically and skips a config whose record exists, so a killed sweep restarts where
it stopped and never leaves a half-written record. `executor="submitit"` submits the missing
runs as a job array (Slurm on a cluster, `cluster="local"` for submitit's LocalExecutor) and
produces the same records.

A run that raises does not end the sweep: it leaves a failure record beside the runs
(`<id>.failed.json` with its config and one-line error, `<id>.traceback.txt`), the sweep goes
on, prints one line per failure at the end and returns them in its SweepSummary; the CLI then
exits 1. A failure record never counts as done, so a rerun retries the run, and a success
removes it. KeyboardInterrupt is no failure: it stops the sweep (finished records stay).

`--dry-run` lists the grid and what it costs (reprolib.cost: images forwarded and
forwarded+backwarded, GPU-hours, the few-shot cells that the class sizes cap).

CLI: `python -m reprolib sweep --profile P [--executor local|submitit] [--dry-run]`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from reprolib import cost, paths
from reprolib.config import Profile, load_profile
from reprolib.devices import resolve_device
from reprolib.errors import ReprolibError, check_choice, check_type
from reprolib.ledger import update_ledger
from reprolib.progress import Progress
from reprolib.protocols import get_protocol
from reprolib.records import clear_failure, config_hash, one_line_error, write_failure
from reprolib.sparsity.network import grid_networks, network_label
from reprolib.transfer import registry as method_registry
from reprolib.transfer import run_transfer
from reprolib.transfer.config import TransferConfig
from reprolib.transfer.grouped import RunError, group_configs, run_group
from reprolib.transfer.run import record_path

EXECUTORS = ("local", "submitit")
CLUSTERS = ("slurm", "local", "debug")   # submitit cluster names; None = auto-detect
GROUP_RUNS = 1   # prompt runs trained together by default (1: one at a time; see run_sweep)


def parse_arm(arm: str) -> tuple[str, str | None]:
    """'lp' -> ('lp', None); 'vp/ilm' -> ('vp', 'ilm'); the method registry says which needs a map."""
    check_type("method", arm, str)
    method, _, label_map = arm.partition("/")
    needs_label_map = method_registry.get(method).needs_label_map
    if not needs_label_map and label_map:
        raise ReprolibError(f"method {arm!r}: {method} takes no label map; valid form: {method!r}")
    if needs_label_map and not label_map:
        raise ReprolibError(f"method {arm!r} needs a label map; valid form: 'method/label_map', e.g. 'vp/ilm'")
    return method, label_map or None


def tickets_of(profile: Profile) -> list[tuple[str, str, int, str | None]]:
    """(network, kind, level, pretrained_dir) of every network in the grid, dense first
    (reprolib.sparsity.network.grid_networks: imported tickets last, by name)."""
    return grid_networks(profile)


def build_grid(profile: Profile) -> list[TransferConfig]:
    """Every TransferConfig of the profile's study, in a stable order (targets outermost)."""
    check_type("profile", profile, Profile)
    results_path = str(paths.runs_dir(profile.path("artifacts")))
    configs = []
    for target in profile.targets:
        for arm in profile.methods:
            method, label_map = parse_arm(arm)
            for network, kind, level, pretrained_dir in tickets_of(profile):
                for n_shot in profile.n_shots:
                    for seed in (profile.full_data_seeds if n_shot == -1 else profile.seeds):
                        configs.append(TransferConfig(
                            profile=profile.profile, target=target, method=method, label_map=label_map,
                            network=network, kind=kind, level=level, pretrained_dir=pretrained_dir,
                            n_shot=n_shot, seed=seed,
                            protocol=profile.protocol, device=profile.device, results_path=results_path,
                            progress=False))
    return configs


@dataclass(frozen=True)
class SubmititOptions:
    """Where and how `executor="submitit"` submits the job array.

    `folder` holds the job logs (default `<results_path>/../submitit`); `cluster` is a
    submitit cluster name (None = auto-detect); `slurm` extra executor parameters (e.g.
    {"slurm_partition": "gpu", "gpus_per_node": 1, "timeout_min": 60}); `max_parallel`
    the Slurm array parallelism.
    """

    folder: str | Path | None = None
    cluster: str | None = None
    slurm: dict[str, Any] = field(default_factory=dict)
    max_parallel: int = 8


@dataclass
class Failure:
    """A run that raised: its config, its one-line error and its failure record's path."""

    config: Any
    error: str
    path: Path

    def line(self) -> str:
        return f"{_describe(self.config)}: {self.error}"


@dataclass
class SweepSummary:
    """What a sweep did: the records of the runs that finished (grid order) and the failures."""

    records: list[dict] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def report(self) -> str:
        """One line per failed run ('<run>: <error>'), under a count; '' when none failed."""
        if self.ok:
            return ""
        total = len(self.records) + len(self.failures)
        return "\n".join([f"{len(self.failures)} of {total} runs failed (failure records beside the runs):"]
                         + [f"  {failure.line()}" for failure in self.failures])


@dataclass(frozen=True)
class _Raised:
    """What a guarded runner returns instead of raising: the error line and the traceback."""

    error: str
    traceback: str


class _Guarded:
    """The runner, with any Exception turned into a _Raised value (picklable for workers and
    submitit; KeyboardInterrupt and SystemExit still propagate and stop the sweep)."""

    def __init__(self, runner: Callable[[Any], dict]):
        self.runner = runner

    def __call__(self, config: Any) -> dict | _Raised:
        try:
            return self.runner(config)
        except Exception as err:   # any failure of one run is that run's failure, not the sweep's
            return _Raised(one_line_error(err), traceback.format_exc())


def run_sweep(configs: list[Any], executor: str = "local", runner: Callable[[Any], dict] | None = None, *,
              submitit: SubmititOptions | None = None, verbose: bool = True, workers: int = 1,
              group_runs: int = GROUP_RUNS) -> SweepSummary:
    """Run every config (finished ones are skipped by the runner); returns the records and failures.

    `runner` defaults to `run_transfer`; tests pass a cheap one with the same contract (write
    the record atomically, return the existing record if present). `submitit` configures the
    submitit executor (see SubmititOptions).
    `workers` > 1 runs the local sweep in that many processes with cores / workers torch
    threads each: the embedded runs are small, so two one-thread processes on two cores do
    about twice the work of one two-thread process. Records do not depend on `workers`.
    A run that raises writes a failure record (`<id>.failed.json` + `<id>.traceback.txt`,
    reprolib.records.write_failure) and the sweep goes on; a run that succeeds removes its
    old failure record. KeyboardInterrupt stops the sweep (finished records stay).
    `group_runs` > 1 (with the default runner) trains up to that many prompt runs on the same
    backbone and target together (reprolib.transfer.grouped): the same records; a worker,
    or a submitit job, then runs one group.
    """
    check_choice("executor", executor, EXECUTORS)
    check_type("workers", workers, int)
    check_type("group_runs", group_runs, int)
    if group_runs < 1:
        raise ReprolibError(f"group_runs must be >= 1 (1 = one run at a time), got {group_runs}")
    grouping = group_runs > 1 and runner is None
    units = group_configs(configs, group_runs) if grouping else configs
    guarded = _Guarded(run_group if grouping else (runner or run_transfer))
    progress = _Progress(len(configs), verbose)
    settle = _settle_group if grouping else _settle
    if executor == "submitit":
        outcomes = _run_submitit(units, guarded, submitit or SubmititOptions(), verbose, settle)
    elif workers > 1:
        outcomes = _run_processes(units, guarded, workers, progress, settle)
    else:
        outcomes = (settle(unit, guarded(unit), progress) for unit in units)
    if grouping:   # back to the grid's order
        settled = {id(config): one for group, outcome in zip(units, outcomes) for config, one in zip(group, outcome)}
        outcomes = [settled[id(config)] for config in configs]
    summary = SweepSummary()
    for config, outcome in zip(configs, outcomes):
        if isinstance(outcome, Failure):
            summary.failures.append(outcome)
        else:
            summary.records.append(outcome)
    if verbose and summary.failures:
        print(summary.report(), flush=True)
    return summary


def _settle(config: Any, outcome: dict | _Raised, progress: _Progress | None = None) -> dict | Failure:
    """Write the failure record of a raised run, or clear an old one of a finished run."""
    runs_dir, run_id = failure_key(config)
    if progress is not None:
        progress.done(config, failed=isinstance(outcome, _Raised))
    if isinstance(outcome, _Raised):
        config_dict = config.to_dict() if hasattr(config, "to_dict") else {"config": repr(config)}
        path = write_failure(runs_dir, run_id, config_dict, outcome.error, outcome.traceback)
        return Failure(config, outcome.error, path)
    clear_failure(runs_dir, run_id)
    return outcome


def _settle_group(group: list[Any], outcome: list[dict] | _Raised, progress: _Progress | None = None) -> list:
    """_settle for each run of a group; a group that raised fails every run of it, a run that
    raised alone (grouped.RunError) only itself."""
    outcomes = [outcome] * len(group) if isinstance(outcome, _Raised) else \
        [_Raised(one.error, one.traceback) if isinstance(one, RunError) else one for one in outcome]
    return [_settle(config, one, progress) for config, one in zip(group, outcomes)]


def failure_key(config: Any) -> tuple[Path, str]:
    """(runs folder, id) under which a config's failure record is kept.

    The run's own record id when the config resolves (the failure sits beside where its
    record would be); a config that does not resolve is keyed by the hash of its fields.
    """
    try:
        path = record_path(config)
        return path.parent, path.stem
    except Exception:   # the config itself is what failed: key it by its own fields
        fields = {k: v for k, v in config.to_dict().items() if k not in ("results_path", "progress")}
        folder = config.results_path or paths.runs_dir(load_profile(config.profile).path("artifacts"))
        return Path(folder), f"config-{config_hash(fields)}"


class _Progress:
    """One line per finished run, with the elapsed time and an ETA (reprolib.progress: the
    terminal when verbose, and always the notebook runner's terminal under `reprolib notebooks`)."""

    def __init__(self, total: int, verbose: bool):
        self.meter = Progress(total, "runs", echo=verbose)

    def done(self, config: Any, failed: bool = False) -> None:
        self.meter.done(_describe(config), failed)


def resolve_workers(workers: int, device: str) -> int:
    """0 = one process per CPU core on the CPU, a single process when a GPU does the work."""
    if workers < 0:
        raise ReprolibError(f"workers must be >= 0 (0 = auto), got {workers}")
    if workers:
        return workers
    return 1 if resolve_device(device) == "cuda" else (os.cpu_count() or 1)


def _set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def _run_processes(configs: list[Any], guarded: _Guarded, workers: int, progress: _Progress, settle=_settle):
    """The local sweep over a pool of processes; outcomes come back in the grid's order.

    An interrupt cancels the runs not yet started (the ones in flight are abandoned, their
    records never half-written) instead of waiting for the whole queue.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")   # no fork of a process holding torch threads
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_set_threads, initargs=(threads,))
    try:
        futures = [pool.submit(guarded, config) for config in configs]
        for config, future in zip(configs, futures):
            try:
                outcome = future.result()
            except Exception as err:   # the worker died (e.g. killed): that run failed
                outcome = _Raised(one_line_error(err), "".join(traceback.format_exception(err)))
            yield settle(config, outcome, progress)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _describe(config: Any) -> str:
    arm = config.method if not config.label_map else f"{config.method}/{config.label_map}"
    ticket = network_label(config.profile, config.backbone, config.network, config.kind, config.level,
                           config.pretrained_dir)
    shots = "full" if config.n_shot == -1 else f"{config.n_shot}-shot"
    return f"{config.target} {arm} {ticket} {shots} seed {config.seed}"


def _run_submitit(configs: list[Any], guarded: _Guarded, options: SubmititOptions, verbose: bool, settle=_settle):
    """Submit all configs as one job array; each job runs the same guarded runner, so records
    are identical; a job that raised, or died, becomes a failure record."""
    import submitit   # optional dependency: only a submitit sweep needs it

    if options.cluster is not None:
        check_choice("submitit cluster", options.cluster, CLUSTERS)
    folder = options.folder
    if folder is None:
        first = getattr(configs[0], "results_path", None) if configs else None
        folder = Path(first).parent / "submitit" if first else Path("submitit")
    executor = submitit.AutoExecutor(folder=str(folder), cluster=options.cluster)
    params = dict(options.slurm)
    if executor.cluster == "slurm":
        params.setdefault("slurm_array_parallelism", options.max_parallel)
    if params:
        executor.update_parameters(**params)
    if not configs:
        return
    jobs = executor.map_array(guarded, configs)
    if verbose:
        print(f"submitted {len(jobs)} runs to submitit ({executor.cluster}); logs in {folder}", flush=True)
    for config, job in zip(configs, jobs):
        try:
            outcome = job.result()
        except Exception as err:   # the job died outside the runner (timeout, OOM kill, node loss)
            outcome = _Raised(one_line_error(err), str(err))
        yield settle(config, outcome)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="embedded", help="smoke | embedded | paper")
    parser.add_argument("--executor", default="local", help="local (in-process) | submitit")
    parser.add_argument("--cluster", default=None, help="submitit cluster: slurm | local | debug (default: auto)")
    parser.add_argument("--workers", type=int, default=None,
                        help="local processes (default: the profile's workers; 0 = one per CPU core)")
    parser.add_argument("--limit", type=int, default=None, help="run only the first N configs of the grid")
    parser.add_argument("--dry-run", action="store_true", help="list the grid and its cost (images, GPU-hours) and exit")
    parser.add_argument("--throughput-fwd", type=cost.parse_rate, default=None,
                        help="images/s forward for --dry-run's GPU-hours (default: bench/results.md, else assumed)")
    parser.add_argument("--throughput-fwdbwd", type=cost.parse_rate, default=None,
                        help="images/s forward+backward for --dry-run's GPU-hours (default as --throughput-fwd)")
    parser.add_argument("--no-ledger", action="store_true", help="do not rebuild the ledger afterwards")
    parser.add_argument("--group-runs", type=int, default=GROUP_RUNS,
                        help="train up to N prompt runs on the same backbone and target together (1: one at a time)")


def run(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile)
    configs = build_grid(profile)
    if args.limit is not None:
        if args.limit < 0:
            raise ReprolibError(f"--limit must be >= 0, got {args.limit}")
        configs = configs[:args.limit]
    if args.dry_run:
        for config in configs:
            print(_describe(config))
        print(f"{len(configs)} runs")
        rate = cost.throughput(profile.backbone, args.throughput_fwd, args.throughput_fwdbwd)
        epochs = get_protocol(profile.protocol).epochs
        for line in cost.describe(cost.grid_cost(configs, profile, epochs), rate) + \
                cost.describe_plans(configs, profile, epochs, rate):
            print(line)
        return 0
    summary = run_sweep(configs, executor=args.executor, submitit=SubmititOptions(cluster=args.cluster),
                        group_runs=args.group_runs,
                        workers=resolve_workers(profile.workers if args.workers is None else args.workers,
                                                profile.device))
    if not args.no_ledger:
        frame = update_ledger(profile.path("artifacts"))
        print(f"ledger: {len(frame)} runs -> {paths.ledger_file(profile.path('artifacts'))}")
    return 0 if summary.ok else 1
