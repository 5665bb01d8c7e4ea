"""`python -m reprolib sweep`: the grid of a profile on this machine's CPU or GPUs, or on Slurm.

  sweep --profile P                      every visible GPU (device cuda) or one process per core
  sweep --profile P --devices 0,2,3      those GPUs, one worker each (--runs-per-gpu K: K each)
  sweep --profile P --executor slurm     Slurm through submitit, the profile's `cluster:` section
                                         (--slurm KEY=VALUE overrides one option)
  sweep --profile my/study.yaml          a profile of your own, by path
  sweep ... --only target=cifar10,method=lp   a slice of the grid (keys: ONLY_KEYS; a key named
                                         twice matches either value)
  sweep ... --dry-run                    the grid, its cost (reprolib.sweep.cost), the wall-clock on the
                                         devices (reprolib.sweep.scheduling) and, for Slurm, the jobs,
                                         the arrays and the batch script; nothing runs

Bad input (an unknown device id, more runs per GPU than the cores feed, an unknown Slurm
option, a time limit shorter than a run) is one line and exit 2, before anything runs or is
submitted. The ledger is rebuilt after every sweep, an interrupted one too (if that fails too, the
first cause is what is shown). The sweep holds its runs folder's lock (reprolib.sweep.lock) from
before its first write to after the ledger: a sweep refused by the lock writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

from reprolib import paths

from reprolib.sweep import cost

from reprolib.sweep import scheduling

from reprolib.sweep import cluster, slurm

from reprolib.sweep import runner as sweep
from reprolib.config import Count, NonNegative, load_profile, profile_help
from reprolib.devices import resolve_device
from reprolib.errors import ReprolibError, check_choice, option_type
from reprolib.study.ledger import update_ledger
from reprolib.protocols import get_protocol
from reprolib.sparsity.tickets import import_profile_tickets

ONLY_KEYS = ("target", "method", "network", "kind", "level", "replicate", "n_shot", "seed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="embedded", help=profile_help())
    parser.add_argument("--executor", default="local", help="local | slurm (submitit on Slurm) | submitit")
    parser.add_argument("--cluster", default=None, help="submitit cluster: slurm | local | debug (default: auto)")
    parser.add_argument("--devices", default=None,
                        help="GPUs: all | 0,2,3 (default with device cuda: all visible), one worker each")
    parser.add_argument("--runs-per-gpu", type=option_type(Count, "--runs-per-gpu"), default=1,
                        help="worker processes per GPU (small runs)")
    parser.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override one of the profile's cluster options: {', '.join(slurm.option_names())}")
    parser.add_argument("--workers", type=option_type(NonNegative, "--workers"), default=None,
                        help="local CPU processes (default: the profile's workers; 0 = one per CPU core)")
    parser.add_argument("--only", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help=f"run only the matching runs; keys: {', '.join(ONLY_KEYS)}")
    parser.add_argument("--limit", type=option_type(NonNegative, "--limit"), default=None,
                        help="run only the first N configs of the grid")
    parser.add_argument("--dry-run", action="store_true", help="list the grid and its cost (images, GPU-hours) and exit")
    parser.add_argument("--throughput-fwd", type=lambda text: cost.parse_rate(text, "--throughput-fwd"), default=None,
                        help="images/s forward for --dry-run's GPU-hours (default: measured in bench/rates.csv, else assumed)")
    parser.add_argument("--throughput-fwdbwd", type=lambda text: cost.parse_rate(text, "--throughput-fwdbwd"),
                        default=None,
                        help="images/s forward+backward for --dry-run's GPU-hours (default as --throughput-fwd)")
    parser.add_argument("--no-ledger", action="store_true", help="do not rebuild the ledger afterwards")
    parser.add_argument("--group-runs", type=option_type(Count, "--group-runs"), default=None,
                        help="train up to N prompt runs on the same backbone and target together "
                             "(default: 16 on CUDA, 1 on the CPU)")


def parse_only(items: list[str]) -> Callable[[Any], bool]:
    """`--only` filters as a predicate over configs (every key must match one of its values)."""
    wanted: dict[str, set[str]] = {}
    for item in items:
        for part in filter(None, (p.strip() for p in item.split(","))):
            key, sep, value = part.partition("=")
            if not sep or not value:
                raise ReprolibError(f"--only {part!r} is not KEY=VALUE; valid keys: {', '.join(ONLY_KEYS)}")
            wanted.setdefault(check_choice("--only key", key.strip(), ONLY_KEYS), set()).add(value.strip())

    def keep(config: Any) -> bool:
        arm = config.method if not config.label_map else f"{config.method}/{config.label_map}"
        values = {key: {str(getattr(config, key))} for key in ONLY_KEYS}
        values["method"] |= {arm}
        values["n_shot"] |= {"full"} if config.n_shot == -1 else set()
        return all(values[key] & accepted for key, accepted in wanted.items())
    return keep


def select(configs: list[Any], args: argparse.Namespace) -> list[Any]:
    """The grid cut by --only and --limit; a filter that keeps nothing is an error."""
    if args.only:
        keep = parse_only(args.only)
        configs = [c for c in configs if keep(c)]
        if not configs:
            raise ReprolibError(f"--only {' '.join(args.only)} matches no run of this grid")
    if args.limit is not None:
        configs = configs[:args.limit]
    return configs


def devices_of(args: argparse.Namespace, device: str) -> list[str] | None:
    """The GPUs to spread over: --devices, else every visible GPU for a CUDA profile; None on CPU."""
    if args.dry_run:
        return scheduling.parse_devices(args.devices, None if args.devices != scheduling.ALL
                                        else scheduling.visible_gpus()) if args.devices else None
    if args.devices is None and resolve_device(device) != "cuda":
        if args.runs_per_gpu != 1:
            raise ReprolibError(f"--runs-per-gpu {args.runs_per_gpu} needs GPUs; this profile's device is "
                                f"{device!r} (CPU processes: --workers)")
        return None
    if resolve_device(device) != "cuda":
        raise ReprolibError(f"--devices {args.devices!r} needs a CUDA profile; this profile's device is {device!r}")
    devices = scheduling.parse_devices(args.devices or scheduling.ALL, scheduling.visible_gpus())
    scheduling.check_runs_per_gpu(args.runs_per_gpu, len(devices))
    return devices


def results_folders(args: argparse.Namespace) -> list:
    """The runs folder the sweep writes (locked while it runs, its ledger update included:
    reprolib.cli); a dry run writes nothing."""
    if args.dry_run:
        return []
    return sorted({str(c.results_path) for c in select(sweep.build_grid(load_profile(args.profile)), args)})


def run(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile)
    configs = select(sweep.build_grid(profile), args)
    check_choice("executor", args.executor, sweep.EXECUTORS)
    options = slurm.cluster_options(profile.cluster, args.slurm)
    rate = cost.throughput(profile.backbone, args.throughput_fwd, args.throughput_fwdbwd, device=profile.device)
    timer = cost.RunTimer(profile, rate)
    where = args.cluster or ("slurm" if args.executor == "slurm" else None)
    # The jobs, as the dry run prints them and the submission submits them; refused before anything runs.
    plan = job_plan(configs, profile, args, timer, options, where) if args.executor != "local" else None
    if where == "slurm" and not args.dry_run and not cluster.available():
        raise ReprolibError("--executor slurm: no Slurm here (sbatch not found); run on a Slurm login node, "
                            "or add --cluster local to try the jobs on this machine")
    devices = devices_of(args, profile.device) if args.executor == "local" or args.dry_run else None
    if args.dry_run:
        dry_run(configs, profile, args, rate, timer, options, devices, plan)
        return 0
    for report in import_profile_tickets(profile):   # the grid's imported tickets, before any run needs them
        print(f"imported ticket {report['name']}: density {report['density']:.4f} ({report['status']})", flush=True)
    submitit = sweep.SubmititOptions(cluster=where, options=options)
    # Jobs elsewhere need no local GPU: only local runs resolve the profile's device here.
    workers = sweep.resolve_workers(profile.workers if args.workers is None else args.workers, profile.device) \
        if args.executor == "local" else 1
    try:
        summary = sweep.run_sweep(configs, executor=args.executor, submitit=submitit, group_runs=args.group_runs,
                                  workers=workers, devices=devices, runs_per_gpu=args.runs_per_gpu,
                                  seconds=timer.seconds)
    except BaseException:   # interrupted or failed: the ledger still shows what is on disk, if it can
        if not args.no_ledger:
            with contextlib.suppress(Exception):   # the first cause (a full disk, Ctrl-C) is what the user sees
                update_ledger(profile.path("artifacts"))
        raise
    if not args.no_ledger:
        frame = update_ledger(profile.path("artifacts"), ship_scores=profile.ship_scores, study=profile.profile)
        print(f"ledger: {len(frame)} runs -> {paths.ledger_file(profile.path('artifacts'))}", flush=True)
    return 0 if summary.ok else 1


def job_plan(configs: list[Any], profile: Any, args: argparse.Namespace, timer: cost.RunTimer,
             options: slurm.ClusterOptions, where: str | None) -> slurm.JobPlan:
    """The jobs of a submitit sweep: the units run_sweep forms (groups on a CUDA profile), oversized
    groups split, bundled under the time limit, arrays capped by the cluster's MaxArraySize, the
    batch script checked by Slurm (reprolib.sweep.cluster.plan_for). Without Slurm here, the dry run
    plans with the profile's values and says so.

    Many parameters because each is one thing `run` already resolved.
    """
    import submitit

    where = where or submitit.AutoExecutor.which()
    units = sweep.sweep_units(configs, args.group_runs, local=False)
    folder = paths.runs_dir(profile.path("artifacts")).parent / "submitit"
    on_cluster = where == "slurm" and cluster.available()
    plan = cluster.plan_for(units, timer.seconds, options, sweep._describe_unit, folder, on_cluster=on_cluster)
    note = None if on_cluster else "no Slurm here: MaxArraySize, MaxTime and sbatch --test-only not checked"
    return dataclasses.replace(plan, limits=plan.limits or note) if note and where == "slurm" else plan


def dry_run(configs: list[Any], profile: Any, args: argparse.Namespace, rate: cost.Throughput,
            timer: cost.RunTimer, options: slurm.ClusterOptions, devices: list[str] | None,
            plan: slurm.JobPlan | None) -> None:
    """Print the grid, its cost, the wall-clock on the devices and, for Slurm, the jobs and script.

    Many parameters because each is one thing `run` already resolved.
    """
    for config in configs:
        print(sweep._describe(config))
    print(f"{len(configs)} runs")
    epochs = get_protocol(profile.protocol).epochs
    for line in cost.describe(cost.grid_cost(configs, profile, epochs), rate) + \
            cost.describe_plans(configs, profile, epochs, rate):
        print(line)
    if devices:
        print(scheduling.describe_wall_clock(configs, timer.seconds, len(devices), args.runs_per_gpu))
    if plan is not None:
        print(plan.describe(options.margin))
        if plan.jobs:
            print(slurm.sbatch_script(options, max(map(len, plan.arrays)),
                                      paths.runs_dir(profile.path("artifacts")).parent / "submitit"))
