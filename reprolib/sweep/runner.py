"""The sweep: the profile's grid of transfer runs, run resumably in-process or through submitit.

`build_grid(profile)` lists one TransferConfig per run: targets x arms ("lp" or
"method/label_map") x tickets (dense = IMP level 0, the IMP levels, and each baseline kind
at `baseline_level`) x n-shots x seeds; full-data runs (n_shot = -1) use
`profile.full_data_seeds`, few-shot runs `profile.seeds`. That is ticket replicate 1; then the
cells of `profile.subgrids` (config.Subgrid) on every ticket replicate, seeds 1..S of replicate
r moved by config.replicate_seed (docs/methods.md s.12), runs already listed once.

`run_sweep(configs)` runs each through `reprolib.transfer.run_transfer`, which writes its
record atomically and skips a config whose record exists, so a killed sweep restarts where
it stopped and never leaves a half-written record. On GPUs one worker per device (or K per
device) takes the runs longest first (reprolib.sweep.workers, reprolib.sweep.scheduling).
`executor="slurm"` (or "submitit") submits the missing runs as job arrays of bundled runs
(reprolib.sweep.slurm, reprolib.sweep.jobs; `cluster="local"` for submitit's LocalExecutor) and
produces the same records. One sweep per results folder at a time (reprolib.sweep.lock).

A run that raises does not end the sweep: it leaves a failure record beside the runs
(`<id>.failed.json` with its config and one-line error, `<id>.traceback.txt`), the sweep goes
on, prints one line per failure at the end and returns them in its SweepSummary; the CLI then
exits 1. A failure record never counts as done, so a rerun retries the run, and a success
removes it. KeyboardInterrupt or SIGTERM is no failure: it stops the sweep and its workers within seconds
(finished records stay; runs in flight are abandoned, never half-written).

`--dry-run` lists the grid and what it costs (reprolib.sweep.cost: images forwarded and
forwarded+backwarded, GPU-hours, the few-shot cells that the class sizes cap).

CLI: reprolib.sweep.cli (`python -m reprolib sweep --profile P [--devices ...] [--executor local|slurm]`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reprolib import determinism, paths

from reprolib.sweep import cost, slurm
from reprolib.config import load_profile
from reprolib.devices import resolve_device
from reprolib.errors import ReprolibError, check_choice, check_type
from reprolib.progress import Progress, emit
from reprolib.records import clear_failure, config_hash, write_failure
from reprolib.sweep.scheduling import longest_first
from reprolib.sparsity.network import network_label
from reprolib.sweep.lock import sweep_locks
from reprolib.transfer import run_transfer
from reprolib.transfer.grouped import MAX_RUNS, RunError, group_configs, run_group
from reprolib.transfer.run import record_path
from reprolib.sweep.jobs import Guarded, Raised, SubmititOptions, run_submitit
from reprolib.sweep.workers import Slot, WorkerPool
from reprolib.sweep.grid import build_grid, parse_arm, tickets_of  # noqa: F401  (the sweep's grid, re-exported)

EXECUTORS = ("local", "submitit", "slurm")   # slurm: submitit on the Slurm cluster


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


def run_sweep(configs: list[Any], executor: str = "local", runner: Callable[[Any], dict] | None = None, *,
              submitit: SubmititOptions | None = None, verbose: bool = True, workers: int = 1,
              group_runs: int | None = None, devices: list[str] | None = None, runs_per_gpu: int = 1,
              seconds: Callable[..., float] | None = None) -> SweepSummary:
    """Run every config (finished ones are skipped by the runner); returns the records and failures.

    Many parameters because each is one independent choice of how the grid runs.
    `runner` defaults to `run_transfer`; tests pass a cheap one with the same contract (write
    the record atomically, return the existing record if present). `submitit` configures the
    submitit executor (SubmititOptions; runs bundled into jobs, reprolib.sweep.slurm).
    `devices` (GPU ids) runs one worker per GPU, or `runs_per_gpu` per GPU, pinned with
    CUDA_VISIBLE_DEVICES; else `workers` > 1 runs that many CPU processes with cores / workers
    torch threads each. Workers are handed the runs longest first by `seconds` (default: the
    cost model; reprolib.sweep.scheduling): `seconds(config)`, and `seconds(config, g)` for a run in a
    group of g (reprolib.sweep.slurm.unit_seconds). A run that raises writes a failure record
    (`<id>.failed.json` + `<id>.traceback.txt`) and the sweep goes on; a success removes an old
    one. KeyboardInterrupt or SIGTERM stops the sweep and its workers (finished records stay,
    runs in flight are abandoned, no failure is recorded). One sweep per results folder
    (reprolib.sweep.lock). `group_runs` > 1 (with the default runner) trains up to that many
    prompt runs on the same backbone and target together (reprolib.transfer.grouped); None:
    grouped.MAX_RUNS on CUDA, 1 on the CPU (whose records stay exactly as they were).
    """
    check_choice("executor", executor, EXECUTORS)
    check_type("workers", workers, int)
    units = sweep_units(configs, group_runs, local=executor == "local", runner=runner)
    grouping = any(isinstance(unit, list) for unit in units)
    guarded = Guarded(run_group if grouping else (runner or run_transfer))
    progress = _Progress(len(configs), verbose)
    settle = _settle_group if grouping else _settle
    seconds = seconds or _timer(configs)
    folders = sorted({str(c.results_path) for c in configs if getattr(c, "results_path", None)})
    with sweep_locks(folders), _sigterm_interrupts():
        if executor in ("submitit", "slurm"):
            options = submitit or SubmititOptions(cluster="slurm" if executor == "slurm" else None)
            units = slurm.fit_groups(units, seconds, options.options)   # the dry run's units (plan_jobs)
            settled = run_submitit(units, guarded, options, verbose, settle, seconds, runner is None,
                                   _describe_unit)
        elif devices or workers > 1:
            settled = _run_workers(units, guarded, _slots(devices, runs_per_gpu, workers), progress, settle,
                                   lambda unit: slurm.unit_seconds(unit, seconds))
        else:
            settled = {i: settle(unit, guarded(unit), progress) for i, unit in enumerate(units)}
    summary = _summary(configs, units, settled, grouping)
    if verbose and summary.failures:
        print(summary.report(), flush=True)
    return summary


def _summary(configs: list[Any], units: list[Any], settled: dict[int, Any], grouping: bool) -> SweepSummary:
    """The settled outcomes, back in the grid's order, as records and failures."""
    outcomes = [settled[i] for i in range(len(units))]
    if grouping:
        flat = {id(config): one for group, outcome in zip(units, outcomes) for config, one in zip(group, outcome)}
        outcomes = [flat[id(config)] for config in configs]
    summary = SweepSummary()
    for outcome in outcomes:
        (summary.failures if isinstance(outcome, Failure) else summary.records).append(outcome)
    return summary


def sweep_units(configs: list[Any], group_runs: int | None, local: bool = True,
                runner: Callable[[Any], dict] | None = None) -> list[Any]:
    """What the sweep hands out: the configs, or with the default runner and a group size above 1
    (`_group_size`) prompt runs grouped (reprolib.transfer.grouped.group_configs; a run that never
    groups stays a config). The dry run plans the same units."""
    group_runs = _group_size(configs, group_runs, local=local)
    return group_configs(configs, group_runs) if group_runs > 1 and runner is None else configs


def _group_size(configs: list[Any], group_runs: int | None, local: bool = True) -> int:
    """The prompt runs trained together: as asked, else MAX_RUNS on CUDA and 1 on the CPU. Jobs
    submitted elsewhere (`local` False) group when the profile says `device: cuda` (the login
    node that submits them may have no GPU)."""
    if group_runs is None:
        device = (getattr(configs[0], "device", None) or _profile_device(configs[0])) if configs else "cpu"
        on_cuda = device == "cuda" if not local else resolve_device(device) == "cuda"
        return MAX_RUNS if on_cuda else 1
    check_type("group_runs", group_runs, int)
    if group_runs < 1:
        raise ReprolibError(f"group_runs must be >= 1 (1 = one run at a time), got {group_runs}")
    return group_runs


def _profile_device(config: Any) -> str:
    try:
        return load_profile(config.profile).device
    except Exception:   # a config of no profile (tests' stand-ins): the CPU
        return "cpu"


def _timer(configs: list[Any]) -> Callable[..., float]:
    """Estimated seconds per config (in a group of `group_runs`) from the cost model at the bench's
    (or assumed) rates; 1 s for a config the model cannot price (a stand-in, an unknown target)."""
    try:
        profile = load_profile(configs[0].profile)
        timer = cost.RunTimer(profile, cost.throughput(profile.backbone, device=profile.device))
    except Exception:   # no configs, or not a study's: every run counts the same
        return lambda config, group_runs=1: 1.0

    def seconds(config: Any, group_runs: int = 1) -> float:
        try:
            return timer.seconds(config, group_runs)
        except Exception:   # the run will fail on its own, with its own error
            return 1.0
    return seconds


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM stops the sweep as Ctrl-C does, and so does SIGINT even when the sweep inherited it
    ignored (in the main thread; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, interrupt)
    # A sweep started from a script's background job inherits SIGINT ignored; an explicit SIGINT
    # must still stop it (a handler already set, e.g. a Jupyter kernel's, is left as it is).
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _settle(config: Any, outcome: dict | Raised, progress: _Progress | None = None) -> dict | Failure:
    """Write the failure record of a raised run, or clear an old one of a finished run."""
    runs_dir, run_id = failure_key(config)
    if progress is not None:
        progress.done(config, failed=isinstance(outcome, Raised))
    if isinstance(outcome, Raised):
        config_dict = config.to_dict() if hasattr(config, "to_dict") else {"config": repr(config)}
        path = write_failure(runs_dir, run_id, config_dict, outcome.error, outcome.traceback)
        return Failure(config, outcome.error, path)
    for folder, key in failure_keys(config, outcome):
        clear_failure(folder, key)
    return outcome


def _settle_group(group: list[Any], outcome: list[dict] | Raised, progress: _Progress | None = None) -> list:
    """_settle for each run of a group; a group that raised fails every run of it, a run that
    raised alone (grouped.RunError) only itself."""
    outcomes = [outcome] * len(group) if isinstance(outcome, Raised) else \
        [Raised(one.error, one.traceback) if isinstance(one, RunError) else one for one in outcome]
    return [_settle(config, one, progress) for config, one in zip(group, outcomes)]


def failure_keys(config: Any, record: Any) -> list[tuple[Path, str]]:
    """Every key under which a run that finished may have left a failure record: its record's own id
    beside the record, `failure_key` now, and the key of its fields (a failure before the config
    resolved: a missing ticket or data set, a login node without its jobs' GPU)."""
    keys = [failure_key(config)]
    if isinstance(record, dict) and record.get("id") and getattr(config, "results_path", None):
        keys.append((Path(config.results_path), str(record["id"])))
    with contextlib.suppress(Exception):   # a stand-in config of no profile has no such key
        keys.append(_fields_key(config))
    return list(dict.fromkeys(keys))


def failure_key(config: Any) -> tuple[Path, str]:
    """(runs folder, id) under which a config's failure record is kept.

    The run's own record id when the config resolves (the failure sits beside where its
    record would be); a config that does not resolve is keyed by the hash of its fields.
    """
    try:
        path = record_path(config)
        return path.parent, path.stem
    except Exception:   # the config itself is what failed: key it by its own fields
        return _fields_key(config)


def _fields_key(config: Any) -> tuple[Path, str]:
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
    """0 = one process per CPU core on the CPU, a single process when a GPU does the work
    (GPUs are spread over with `devices`, reprolib.sweep.scheduling)."""
    if workers < 0:
        raise ReprolibError(f"workers must be >= 0 (0 = auto), got {workers}")
    if workers:
        return workers
    return 1 if resolve_device(device) == "cuda" else (os.cpu_count() or 1)


def _slots(devices: list[str] | None, runs_per_gpu: int, workers: int) -> list[Slot]:
    """A slot per GPU and run, else `workers` CPU slots; the slots share the CPU cores evenly."""
    if devices:
        threads = max(1, (os.cpu_count() or 1) // (len(devices) * runs_per_gpu))
        return [Slot(gpu, threads) for gpu in devices for _ in range(runs_per_gpu)]
    # CPU runs train on the protocol's thread count whatever the worker count (same numbers everywhere)
    return [Slot(None, determinism.CPU_THREADS) for _ in range(workers)]


def _run_workers(units: list[Any], guarded: Guarded, slots: list[Slot], progress: _Progress, settle,
                 seconds: Callable[[Any], float]) -> dict[int, Any]:
    """The local sweep over worker processes (reprolib.sweep.workers), longest first; settled outcomes by index."""
    pool = WorkerPool(guarded, slots, say=emit)
    settled = {}
    try:
        for index, outcome in pool.run(units, longest_first(units, seconds), describe=_describe_unit,
                                       dead=lambda message: Raised(message, message)):
            settled[index] = settle(units[index], outcome, progress)
    finally:
        pool.stop()
    return settled


def _describe_unit(unit: Any) -> str:
    if isinstance(unit, list):
        return f"a group of {len(unit)} runs ({_describe(unit[0])}, ...)"
    return _describe(unit)


def _describe(config: Any) -> str:
    arm = config.method if not config.label_map else f"{config.method}/{config.label_map}"
    ticket = network_label(config.profile, config.backbone, config.network, config.kind, config.level,
                           config.pretrained_dir)
    shots = "full" if config.n_shot == -1 else f"{config.n_shot}-shot"
    replicate = "" if getattr(config, "replicate", 1) == 1 else f" replicate {config.replicate}"
    return f"{config.target} {arm} {ticket}{replicate} {shots} seed {config.seed}"


