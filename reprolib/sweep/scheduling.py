"""Which device runs what: device lists, longest-first hand-out, and the wall-clock it predicts.

A local sweep on GPUs starts one worker process per GPU (pinned by CUDA_VISIBLE_DEVICES), or K
per GPU with `--runs-per-gpu K` to fill a GPU with small few-shot runs (reprolib.sweep.workers). Runs
are handed out longest first by the cost model's estimate (reprolib.sweep.cost.RunTimer), the classic
LPT rule: whichever slot frees first takes the longest run left, so the devices finish together
(LPT's makespan is within 4/3 of the best possible).

`wall_clock` replays that hand-out on the estimates, so `sweep --dry-run --devices 0,...,7`
shows what a node buys over one GPU at the same rates. K runs sharing a GPU are priced as
each running at 1/K of its speed, with the small-step floor shared K ways (as a group of K).
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from reprolib.errors import ReprolibError

ALL = "all"


def visible_gpus() -> int:
    """How many CUDA GPUs this process sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def parse_devices(text: str, visible: int | None) -> list[str]:
    """'all' or '0,2,3' -> GPU ids as strings; `visible` None (a dry run) accepts any ids.

    One-line errors name the bad id and the valid ones.
    """
    text = str(text).strip()
    if text == ALL:
        if visible is None or visible < 1:
            raise ReprolibError("--devices all: no CUDA GPU is visible here; valid: a list of ids such as 0,1 "
                                "(with --dry-run), or run where a GPU is visible")
        return [str(i) for i in range(visible)]
    ids = [part.strip() for part in text.split(",")]
    valid = f"0..{visible - 1}" if visible else "none (no CUDA GPU visible)"
    for part in ids:
        if not part.isdigit() or (visible is not None and int(part) >= visible):
            raise ReprolibError(f"unknown device id {part!r} in --devices {text!r}; valid choices: all or ids "
                                f"from {valid}, comma-separated")
    if len(set(ids)) != len(ids):
        raise ReprolibError(f"--devices {text!r} names a device twice; valid: each id once")
    return [str(int(i)) for i in ids]


def check_runs_per_gpu(runs_per_gpu: int, devices: int, cpus: int | None = None) -> int:
    """K processes per GPU, each needing a CPU core to feed it: K x devices <= the cores."""
    cpus = cpus or os.cpu_count() or 1
    most = max(1, cpus // max(devices, 1))
    if not 1 <= runs_per_gpu <= most:
        raise ReprolibError(f"--runs-per-gpu {runs_per_gpu} does not fit: {devices} GPU(s) on {cpus} CPU cores "
                            f"(one core per run process); valid choices: 1..{most}")
    return runs_per_gpu


def longest_first(units: Sequence[Any], seconds: Callable[[Any], float]) -> list[int]:
    """Indices of `units`, longest estimate first (ties keep the grid's order)."""
    estimates = [seconds(unit) for unit in units]
    return sorted(range(len(units)), key=lambda i: (-estimates[i], i))


@dataclass(frozen=True)
class Schedule:
    """Where each unit goes and when everything ends, in estimated seconds."""

    slot_of: list[int]          # unit index -> slot
    busy: list[float]           # slot -> estimated busy seconds
    makespan: float             # seconds until the last slot finishes


def lpt(durations: Sequence[float], slots: int) -> Schedule:
    """Longest first onto whichever slot frees first (module docstring)."""
    if slots < 1:
        raise ReprolibError(f"a schedule needs at least one slot, got {slots}")
    free = [(0.0, slot) for slot in range(slots)]
    slot_of, busy = [0] * len(durations), [0.0] * slots
    for index in sorted(range(len(durations)), key=lambda i: (-durations[i], i)):
        ends, slot = heapq.heappop(free)
        slot_of[index], busy[slot] = slot, ends + durations[index]
        heapq.heappush(free, (busy[slot], slot))
    return Schedule(slot_of, busy, max(busy, default=0.0))


def wall_clock(units: Sequence[Any], seconds: Callable[[Any, int], float], devices: int,
               runs_per_gpu: int = 1) -> float:
    """Estimated seconds for `units` on `devices` GPUs with `runs_per_gpu` processes each.

    `seconds(unit, share)` is a unit's time alone with its small-step floor shared `share` ways;
    a unit sharing a GPU with K-1 others runs at 1/K speed.
    """
    durations = [runs_per_gpu * seconds(unit, runs_per_gpu) for unit in units]
    return lpt(durations, devices * runs_per_gpu).makespan


def describe_wall_clock(units: Sequence[Any], seconds: Callable[[Any, int], float], devices: int,
                        runs_per_gpu: int = 1) -> str:
    """The dry run's line: one GPU's wall-clock against this device list's."""
    one = wall_clock(units, seconds, 1, 1)
    many = wall_clock(units, seconds, devices, runs_per_gpu)
    share = f"{one / many:.2f}x faster, {many / one:.3f} of one GPU's" if many else "-"
    return (f"wall-clock (longest-first on the cost model): one GPU {one / 3600:,.2f} h; "
            f"{devices} GPU(s) x {runs_per_gpu} run(s) each {many / 3600:,.2f} h ({share})")
