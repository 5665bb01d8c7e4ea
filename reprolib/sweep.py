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

CLI: `python -m reprolib sweep --profile P [--executor local|submitit] [--dry-run]`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from reprolib import paths
from reprolib.config import Profile, load_profile
from reprolib.devices import resolve_device
from reprolib.errors import ReprolibError, check_choice, check_type
from reprolib.ledger import update_ledger
from reprolib.transfer import registry as method_registry
from reprolib.transfer import run_transfer
from reprolib.transfer.config import TransferConfig

EXECUTORS = ("local", "submitit")
CLUSTERS = ("slurm", "local", "debug")   # submitit cluster names; None = auto-detect


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


def tickets_of(profile: Profile) -> list[tuple[str, str, int]]:
    """(network, kind, level) of every network in the grid, dense first."""
    tickets = [("dense", "imp", 0)]
    tickets += [("LT", "imp", level) for level in profile.levels if level > 0]
    tickets += [("LT", kind, profile.baseline_level) for kind in profile.baselines]
    return list(dict.fromkeys(tickets))


def build_grid(profile: Profile) -> list[TransferConfig]:
    """Every TransferConfig of the profile's study, in a stable order (targets outermost)."""
    check_type("profile", profile, Profile)
    results_path = str(paths.runs_dir(profile.path("artifacts")))
    configs = []
    for target in profile.targets:
        for arm in profile.methods:
            method, label_map = parse_arm(arm)
            for network, kind, level in tickets_of(profile):
                for n_shot in profile.n_shots:
                    for seed in (profile.full_data_seeds if n_shot == -1 else profile.seeds):
                        configs.append(TransferConfig(
                            profile=profile.profile, target=target, method=method, label_map=label_map,
                            network=network, kind=kind, level=level, n_shot=n_shot, seed=seed,
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


def run_sweep(configs: list[Any], executor: str = "local", runner: Callable[[Any], dict] | None = None, *,
              submitit: SubmititOptions | None = None, verbose: bool = True, workers: int = 1) -> list[dict]:
    """Run every config (finished ones are skipped by the runner); returns their records in order.

    `runner` defaults to `run_transfer`; tests pass a cheap one with the same contract (write
    the record atomically, return the existing record if present). `submitit` configures the
    submitit executor (see SubmititOptions).
    `workers` > 1 runs the local sweep in that many processes with cores / workers torch
    threads each: the embedded runs are small, so two one-thread processes on two cores do
    about twice the work of one two-thread process. Records do not depend on `workers`.
    """
    check_choice("executor", executor, EXECUTORS)
    runner = runner or run_transfer
    check_type("workers", workers, int)
    if executor == "submitit":
        return _run_submitit(configs, runner, submitit or SubmititOptions(), verbose)
    if workers > 1:
        return _run_processes(configs, runner, workers, verbose)
    progress = _Progress(len(configs), verbose)
    records = []
    for config in configs:
        records.append(runner(config))
        progress.done(config)
    return records


class _Progress:
    """One line per finished run: '[i/n] <run> (<seconds since start> s)'."""

    def __init__(self, total: int, verbose: bool):
        self.total, self.verbose, self.count, self.start = total, verbose, 0, time.monotonic()

    def done(self, config: Any) -> None:
        self.count += 1
        if self.verbose:
            print(f"[{self.count}/{self.total}] {_describe(config)}  ({time.monotonic() - self.start:.0f} s)",
                  flush=True)


def resolve_workers(workers: int, device: str) -> int:
    """0 = one process per CPU core on the CPU, a single process when a GPU does the work."""
    if workers < 0:
        raise ReprolibError(f"workers must be >= 0 (0 = auto), got {workers}")
    if workers:
        return workers
    return 1 if resolve_device(device) == "cuda" else (os.cpu_count() or 1)


def _set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def _run_processes(configs: list[Any], runner: Callable[[Any], dict], workers: int, verbose: bool) -> list[dict]:
    """The local sweep over a pool of processes; results come back in the grid's order."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    progress = _Progress(len(configs), verbose)
    context = multiprocessing.get_context("spawn")   # no fork of a process holding torch threads
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_set_threads, initargs=(threads,)) as pool:
        futures = [pool.submit(runner, config) for config in configs]
        records = []
        for config, future in zip(configs, futures):
            records.append(future.result())
            progress.done(config)
    return records


def _describe(config: Any) -> str:
    arm = config.method if not config.label_map else f"{config.method}/{config.label_map}"
    ticket = "dense" if config.network == "dense" else f"{config.kind} L{config.level}"
    shots = "full" if config.n_shot == -1 else f"{config.n_shot}-shot"
    return f"{config.target} {arm} {ticket} {shots} seed {config.seed}"


def _run_submitit(configs: list[Any], runner: Callable[[Any], dict], options: SubmititOptions,
                  verbose: bool) -> list[dict]:
    """Submit all configs as one job array; each job runs the same runner, so records are identical."""
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
        return []
    jobs = executor.map_array(runner, configs)
    if verbose:
        print(f"submitted {len(jobs)} runs to submitit ({executor.cluster}); logs in {folder}", flush=True)
    return [job.result() for job in jobs]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="embedded", help="smoke | embedded | paper")
    parser.add_argument("--executor", default="local", help="local (in-process) | submitit")
    parser.add_argument("--cluster", default=None, help="submitit cluster: slurm | local | debug (default: auto)")
    parser.add_argument("--workers", type=int, default=None,
                        help="local processes (default: the profile's workers; 0 = one per CPU core)")
    parser.add_argument("--limit", type=int, default=None, help="run only the first N configs of the grid")
    parser.add_argument("--dry-run", action="store_true", help="list the grid and exit")
    parser.add_argument("--no-ledger", action="store_true", help="do not rebuild the ledger afterwards")


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
        return 0
    run_sweep(configs, executor=args.executor, submitit=SubmititOptions(cluster=args.cluster),
              workers=resolve_workers(profile.workers if args.workers is None else args.workers, profile.device))
    if not args.no_ledger:
        frame = update_ledger(profile.path("artifacts"))
        print(f"ledger: {len(frame)} runs -> {paths.ledger_file(profile.path('artifacts'))}")
    return 0
