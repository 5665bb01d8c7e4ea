"""The figures docs and profile comments quote about the GPU grids, computed by the cost model.

A number the code produces is never typed by hand: docs/gpu.md holds a block rendered by
`gpu_doc_block()`, and the profiles' comments name their longest run; tests/test_gpu_docs.py
checks both against these functions and prints the block to paste when the grid or the cost
model changes. The figures are priced at the stated assumption (reprolib.sweep.rates: 1,000
images/s forward+backward, 3,000 forward), not at whatever this machine measured, so they are
the same on every machine; `sweep --dry-run` prints the same figures at measured rates.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from reprolib.config import load_profile
from reprolib.protocols import get_protocol
from reprolib.sweep import cost, scheduling
from reprolib.sweep.rates import ASSUMED_FWD, ASSUMED_FWDBWD, Throughput
from reprolib.sweep.runner import _describe, build_grid

ASSUMED = Throughput(ASSUMED_FWD, ASSUMED_FWDBWD, "the stated assumption")
NODE_GPUS = 8


@dataclass(frozen=True)
class GridFigures:
    """What the docs say about one profile's grid (GPU-hours at the assumed rates)."""

    profile: str
    runs: int
    training_images: int          # forward+backward images (prompt training)
    forward_images: int           # forward-only images, the plan as run (scheduled tests, shared LP features)
    hours_before: float           # test every epoch, LP features per run
    hours: float                  # as run: scheduled tests, shared LP features, grouped prompt runs
    full_data_share: float        # of `hours_before`, as the dry run's GPU-hours line says
    own_module_hours: float       # the methods' own modules (SMM's mask generator)
    one_gpu_hours: float          # longest-first wall-clock on one GPU
    node_hours: float             # and on NODE_GPUS GPUs
    longest_run: str
    longest_run_hours: float


@functools.lru_cache(maxsize=4)
def grid_figures(profile_name: str) -> GridFigures:
    """The cost model's figures for `profile_name`'s whole grid at the assumed rates."""
    profile = load_profile(profile_name)
    configs = build_grid(profile)
    epochs = get_protocol(profile.protocol).epochs
    before = cost.grid_cost(configs, profile, epochs, cost.BEFORE)
    after = cost.grid_cost(configs, profile, epochs, cost.AFTER)
    timer = cost.RunTimer(profile, ASSUMED)
    longest = max(configs, key=timer.seconds)
    return GridFigures(
        profile=profile_name, runs=len(configs), training_images=after.fwdbwd, forward_images=after.fwd,
        hours_before=before.hours(ASSUMED), hours=after.hours(ASSUMED),
        full_data_share=before.hours(ASSUMED, full_data_only=True) / before.hours(ASSUMED),
        own_module_hours=(before.own_fwd / ASSUMED.fwd + before.own_fwdbwd / ASSUMED.fwdbwd) / 3600,
        one_gpu_hours=scheduling.wall_clock(configs, timer.seconds, 1) / 3600,
        node_hours=scheduling.wall_clock(configs, timer.seconds, NODE_GPUS) / 3600,
        longest_run=_describe(longest), longest_run_hours=timer.seconds(longest) / 3600)


def gpu_doc_block(profiles: tuple[str, ...] = ("paper-headline", "paper")) -> str:
    """docs/gpu.md's generated table: each GPU profile's grid as the cost model prices it."""
    rows = [f"| {f.profile} | {f.runs:,} | {_images(f.training_images)} | {f.hours_before:,.1f} "
            f"| {f.hours:,.1f} | {100 * f.full_data_share:.0f}% | {f.own_module_hours:,.1f} | {f.one_gpu_hours:,.1f} h "
            f"| {f.node_hours:,.1f} h | {f.longest_run}: {f.longest_run_hours:.2f} h |"
            for f in map(grid_figures, profiles)]
    return "\n".join([
        "| profile | runs | training images (forward+backward) | GPU-hours, test every epoch | GPU-hours as run "
        "| full-data share | SMM generator GPU-hours | one GPU | a node of 8 | longest run |",
        "|---|---|---|---|---|---|---|---|---|---|", *rows])


def _images(n: int) -> str:
    return f"{n / 1e9:.2f} billion" if n >= 1e9 else f"{n / 1e6:.1f} million"
