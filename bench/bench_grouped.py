"""Grouped runs vs one at a time, each loop vs a bare forward+backward, and the embedded sweep.

`python bench/bench_grouped.py [--profile embedded] [--runs 8] [--sweep]` (also run by
`bench.py`). On the profile's dense upstream model and `digits`, under the `embedded`
protocol:
- grouped vs one at a time: `--runs` prompt runs (VP-ILM, VP-FLM, SMM-ILM, full-ILM on
  different seeds, full training data) trained one by one with `fit`, then together with
  `reprolib.transfer.grouped.fit_group`; training images/s of each (whole fits: mapping
  passes, evaluation and augmentation included);
- each loop vs the limit: the same backbone's bare forward+backward (frozen, gradient to the
  input, as a prompt's step) at the loop's own batch (64; a full group: runs x 64), and the
  loop's images/s as a fraction of it (issue goal: >= 0.8);
- `--sweep`: the time of the profile's whole sweep (every run of the grid, into a scratch
  artifacts folder holding the profile's tickets), one at a time and grouped.
Timings depend on the machine's load; nothing here asserts them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from bench_throughput import _timed   # beside this file: the script's folder is on sys.path

ARMS = (("vp", "ilm"), ("vp", "flm"), ("smm", "ilm"), ("full", "ilm"))


def bare_fwdbwd(backbone, batch: int, steps: int = 20) -> float:
    """Images/s of the frozen backbone's forward+backward (gradient to the input) at `batch`."""
    x = torch.rand(batch, backbone.channels, backbone.input_size, backbone.input_size)
    y = torch.randint(0, backbone.num_source_classes, (batch,))

    def step():
        inputs = x.detach().requires_grad_(True)
        F.cross_entropy(backbone(inputs), y).backward()

    return batch * steps / _timed(step, steps, "cpu")


def bare_prompted_fwdbwd(method, images: torch.Tensor, labels: torch.Tensor, batch: int, steps: int = 20) -> float:
    """Images/s of the run's own model (prompt + frozen backbone + label map) forward+backward
    into the prompt's parameters at `batch`: a step without data handling, augmentation or
    optimiser, i.e. the method's compute limit (SMM's mask generator included)."""
    x, y = images[:batch], labels[:batch]
    for module in method.modules:
        module.train()

    def step():
        F.cross_entropy(method.forward(x), y).backward()

    seconds = _timed(step, steps, "cpu")
    for module in method.modules:
        module.eval()
    return len(y) * steps / seconds


class _PhaseTimer:
    """Seconds a `fit` spends in its training passes and its test passes (patched in for the
    bench only); the rest is the label-mapping passes and storing the inputs."""

    def __init__(self):
        import reprolib.transfer.train as train

        self.train, self.real = train, (train.train_one_epoch, train.evaluate)
        self.seconds = {"train": 0.0, "test": 0.0}

    def _timed(self, phase: str, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start
        return wrapper

    def __enter__(self):
        self.train.train_one_epoch = self._timed("train", self.real[0])
        self.train.evaluate = self._timed("test", self.real[1])
        return self

    def __exit__(self, *exc):
        self.train.train_one_epoch, self.train.evaluate = self.real


def _members(backbone, n_runs: int, train, test, epochs: int):
    from reprolib.data import info
    from reprolib.protocols import get_protocol
    from reprolib.transfer import MethodContext, build_method
    from reprolib.transfer.train import FitSettings, Splits

    protocol = get_protocol("embedded", epochs=epochs)
    members = []
    for k in range(n_runs):
        method, label_map = ARMS[k % len(ARMS)]
        seed = 1 + k // len(ARMS)
        ctx = MethodContext(backbone, info("digits"), protocol, epochs, seed, "cpu", label_map)
        settings = FitSettings(epochs, protocol.batch_size, protocol.test_batch_size, seed,
                               eval_epochs=tuple(protocol.eval_epochs(epochs)))
        members.append((build_method(method, ctx), Splits(train, test), settings))
    return members


def _loop_rows(arm, method, backbone, train, settings, images: int, seconds: float,
               phases: dict[str, float]) -> list[dict[str, Any]]:
    """The issue's ratio (whole loop / bare backbone pass), then where the rest goes: the share
    of the run in training passes, test passes and label mapping, and the training passes
    against the bare backbone and against the method's own model (prompt included)."""
    batch = settings.batch_size
    bare = bare_fwdbwd(backbone, batch)
    stored = method.encode(train[0][:batch])
    prompted = bare_prompted_fwdbwd(method, stored, train[1][:batch], batch)
    name, train_rate = f"{arm[0]}-{arm[1]}", images / phases["train"]
    other = seconds - phases["train"] - phases["test"]
    split = (f"training passes {phases['train'] / seconds:.0%}, test passes {phases['test'] / seconds:.0%}, "
             f"label mapping and storing {other / seconds:.0%} of {seconds:.1f} s")
    return [
        {"benchmark": f"{name} loop / bare forward+backward at batch {batch} (goal >= 0.8)",
         "value": f"{images / seconds / bare:.2f}", "images/s": f"{images / seconds:.0f}",
         "note": f"bare {bare:.0f} img/s; whole fit: {split}"},
        {"benchmark": f"{name} training passes / bare backbone forward+backward",
         "value": f"{train_rate / bare:.2f}", "images/s": f"{train_rate:.0f}",
         "note": "the loop without its test and label-mapping passes"},
        {"benchmark": f"{name} training passes / bare prompted forward+backward",
         "value": f"{train_rate / prompted:.2f}", "images/s": f"{train_rate:.0f}",
         "note": f"prompted model (prompt, backbone, label map) {prompted:.0f} img/s: the loop's own overhead"},
    ]


def bench_grouping(backbone, train, test, n_runs: int, epochs: int) -> list[dict[str, Any]]:
    """Rows: each arm's loop vs the bare limit at its batch (measured right after it, the
    machine's load drifts), then one at a time vs grouped (images/s, ratio)."""
    from reprolib.transfer.grouped import fit_group
    from reprolib.transfer.train import fit

    per_run, rows, alone_seconds = epochs * len(train[1]), [], 0.0
    for k, (method, splits, settings) in enumerate(_members(backbone, n_runs, train, test, epochs)):
        start = time.perf_counter()
        with _PhaseTimer() as phases:
            fit(method, splits, settings)
        seconds = time.perf_counter() - start
        alone_seconds += seconds
        if k < len(ARMS):
            rows += _loop_rows(ARMS[k], method, backbone, train, settings, per_run, seconds, phases.seconds)
    members = _members(backbone, n_runs, train, test, epochs)
    start = time.perf_counter()
    fit_group(backbone, members)
    grouped_seconds = time.perf_counter() - start
    bare_group = bare_fwdbwd(backbone, 64 * n_runs, steps=5)
    images = n_runs * per_run
    note = f"{n_runs} runs ({', '.join(f'{m}-{l}' for m, l in ARMS)} x seeds), digits full data, {epochs} epochs"
    return rows + [
        {"benchmark": "prompt runs one at a time (fit)", "value": f"{alone_seconds:.1f} s",
         "images/s": f"{images / alone_seconds:.0f}", "note": note},
        {"benchmark": f"prompt runs grouped, {n_runs} per backbone pass (fit_group)",
         "value": f"{grouped_seconds:.1f} s", "images/s": f"{images / grouped_seconds:.0f}", "note": note},
        {"benchmark": "grouped / one at a time", "value": f"{alone_seconds / grouped_seconds:.2f}x"},
        {"benchmark": f"grouped loop / bare forward+backward at batch {64 * n_runs}",
         "value": f"{images / grouped_seconds / bare_group:.2f}", "note": f"bare {bare_group:.0f} img/s"},
    ]


def bench_sweep(profile_name: str, tickets: Path, group_runs: int) -> dict[str, Any]:
    """Time the profile's whole sweep into a scratch artifacts folder with `tickets` copied in."""
    from reprolib.config import load_profile
    from reprolib.sweep.runner import build_grid, resolve_workers, run_sweep

    with tempfile.TemporaryDirectory() as scratch:
        shutil.copytree(tickets, Path(scratch) / "tickets")
        profile = load_profile(profile_name, artifacts=scratch)
        configs = build_grid(profile)
        start = time.perf_counter()
        summary = run_sweep(configs, verbose=False, group_runs=group_runs,
                            workers=resolve_workers(profile.workers, profile.device))
        seconds = time.perf_counter() - start
    return {"benchmark": f"{profile_name} sweep, group_runs={group_runs}", "value": f"{seconds:.0f} s",
            "note": f"{len(configs)} runs, {len(summary.failures)} failed, {os.cpu_count()} cores"}


def run(profile_name: str = "embedded", n_runs: int = 8, epochs: int | None = None, sweep: bool = False,
        artifacts: str | None = None) -> list[dict[str, Any]]:
    from reprolib import paths
    from reprolib.config import load_profile
    from reprolib.data import get_dataset
    from reprolib.protocols import get_protocol
    from reprolib.sparsity import get_network

    profile = load_profile(profile_name, **({"artifacts": artifacts} if artifacts else {}))
    backbone, _ = get_network(profile)
    backbone.eval().requires_grad_(False)
    train = get_dataset("digits", "train", root=profile.path("data_root")).tensors()
    test = get_dataset("digits", "test", root=profile.path("data_root")).tensors()
    rows = bench_grouping(backbone, train, test, n_runs, epochs or get_protocol("embedded").epochs)
    if sweep:
        tickets = paths.tickets_root(profile.path("artifacts"))
        rows += [bench_sweep(profile_name, tickets, group) for group in (1, 16)]
    return rows


def main(argv: list[str] | None = None) -> int:
    from bench_table import to_markdown   # beside this file: the script's folder is on sys.path

    parser = argparse.ArgumentParser(prog="python bench/bench_grouped.py", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--sweep", action="store_true", help="also time the profile's whole sweep")
    args = parser.parse_args(argv)
    print(to_markdown(run(args.profile, args.runs, args.epochs, args.sweep), "Grouped runs and loop limits"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
