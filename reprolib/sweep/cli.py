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
submitted. The ledger is rebuilt after every sweep, an interrupted one too.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from typing import Any

from reprolib import paths

from reprolib.sweep import cost

from reprolib.sweep import scheduling

from reprolib.sweep import slurm

from reprolib.sweep import runner as sweep
from reprolib.config import load_profile, profile_names
from reprolib.devices import resolve_device
from reprolib.errors import ReprolibError, check_choice
from reprolib.study.ledger import update_ledger
from reprolib.protocols import get_protocol

ONLY_KEYS = ("target", "method", "network", "kind", "level", "replicate", "n_shot", "seed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="embedded",
                        help=f"{' | '.join(profile_names())}, or the path of your own profile YAML")
    parser.add_argument("--executor", default="local", help="local | slurm (submitit on Slurm) | submitit")
    parser.add_argument("--cluster", default=None, help="submitit cluster: slurm | local | debug (default: auto)")
    parser.add_argument("--devices", default=None,
                        help="GPUs: all | 0,2,3 (default with device cuda: all visible), one worker each")
    parser.add_argument("--runs-per-gpu", type=int, default=1, help="worker processes per GPU (small runs)")
    parser.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override one of the profile's cluster options: {', '.join(slurm.option_names())}")
    parser.add_argument("--workers", type=int, default=None,
                        help="local CPU processes (default: the profile's workers; 0 = one per CPU core)")
    parser.add_argument("--only", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE]",
                        help=f"run only the matching runs; keys: {', '.join(ONLY_KEYS)}")
    parser.add_argument("--limit", type=int, default=None, help="run only the first N configs of the grid")
    parser.add_argument("--dry-run", action="store_true", help="list the grid and its cost (images, GPU-hours) and exit")
    parser.add_argument("--throughput-fwd", type=cost.parse_rate, default=None,
                        help="images/s forward for --dry-run's GPU-hours (default: bench/results.md, else assumed)")
    parser.add_argument("--throughput-fwdbwd", type=cost.parse_rate, default=None,
                        help="images/s forward+backward for --dry-run's GPU-hours (default as --throughput-fwd)")
    parser.add_argument("--no-ledger", action="store_true", help="do not rebuild the ledger afterwards")
    parser.add_argument("--group-runs", type=int, default=None,
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
        if args.limit < 0:
            raise ReprolibError(f"--limit must be >= 0, got {args.limit}")
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


def run(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile)
    configs = select(sweep.build_grid(profile), args)
    check_choice("executor", args.executor, sweep.EXECUTORS)
    options = slurm.cluster_options(profile.cluster, args.slurm)
    rate = cost.throughput(profile.backbone, args.throughput_fwd, args.throughput_fwdbwd)
    timer = cost.RunTimer(profile, rate)
    if args.executor != "local":   # a run longer than a job's limit: refused before anything is submitted
        slurm.bundle(configs, timer.seconds, options, sweep._describe)
    devices = devices_of(args, profile.device) if args.executor == "local" or args.dry_run else None
    if args.dry_run:
        dry_run(configs, profile, args, rate, timer, options, devices)
        return 0
    cluster = args.cluster or ("slurm" if args.executor == "slurm" else None)
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise ReprolibError("--executor slurm: no Slurm here (sbatch not found); run on a Slurm login node, "
                            "or add --cluster local to try the jobs on this machine")
    submitit = sweep.SubmititOptions(cluster=cluster, options=options)
    workers = sweep.resolve_workers(profile.workers if args.workers is None else args.workers, profile.device)
    try:
        summary = sweep.run_sweep(configs, executor=args.executor, submitit=submitit, group_runs=args.group_runs,
                                  workers=workers, devices=devices, runs_per_gpu=args.runs_per_gpu,
                                  seconds=timer.seconds)
    finally:   # after every sweep, an interrupted one too: the ledger shows what is on disk
        if not args.no_ledger:
            frame = update_ledger(profile.path("artifacts"))
            print(f"ledger: {len(frame)} runs -> {paths.ledger_file(profile.path('artifacts'))}", flush=True)
    return 0 if summary.ok else 1


def dry_run(configs: list[Any], profile: Any, args: argparse.Namespace, rate: cost.Throughput,
            timer: cost.RunTimer, options: slurm.ClusterOptions, devices: list[str] | None) -> None:
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
    if args.executor != "local":
        jobs = slurm.bundle(configs, timer.seconds, options, sweep._describe)
        chunks = slurm.arrays(jobs, options.max_array_size)
        longest = max(sum(timer.seconds(configs[i]) for i in job) for job in jobs) if jobs else 0.0
        print(f"slurm: {len(jobs)} jobs in {len(chunks)} array(s) of at most {options.max_array_size} "
              f"(largest {max(map(len, chunks), default=0)}); longest job {longest / 60:.0f} min estimated, "
              f"x margin {options.margin} <= timeout_min {options.timeout_min}")
        if chunks:
            print(slurm.sbatch_script(options, len(chunks[0]), paths.runs_dir(profile.path("artifacts")).parent
                                      / "submitit"))
