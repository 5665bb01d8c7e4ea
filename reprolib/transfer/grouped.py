"""Grouped runs: prompt runs on the same backbone and target train together, one backbone pass
per step for all of them.

The frozen backbone is in eval mode (BatchNorm uses running statistics), so every sample's
output depends on that sample alone: concatenating the minibatches of several runs into one
backbone batch changes nothing but float round-off. Each run keeps everything of its own:
its stored inputs, its minibatch generator and augmentation generator (so it sees exactly
the batches it would alone), its prompt, optimisers, schedulers, label map (ILM remaps per
run), evaluation schedule, best-epoch snapshot, and its record. The step's loss is the sum
of the runs' mean cross-entropies; each prompt only reaches its own term, so its gradient
is its own run's. A run whose epoch has fewer minibatches simply sits out the rest of the
epoch's steps.

On CUDA one backbone pass takes at most `pass_images(backbone, device)` images: half the GPU's
memory over what a training step keeps per image for its backward (reprolib.models.flops.
activation_bytes: 41.7 MiB for ResNet-50 at 224 px in bf16). A step whose runs bring more (16
runs at RLT's batch 128 are 2,048 images, 83.5 GiB) goes through the backbone in consecutive parts
of whole runs, each part forward and backward before the next, then every run steps: each run's
gradient is its own either way, so the parts change nothing but float round-off, and memory is
bounded by a pass, not by the group.

Equal to one-by-one within float round-off of the batched backbone (tests/test_perf.py checks
learned prompts, logits and final metrics at rtol 1e-4 / atol 1e-5 on CPU), and the same
records: the same ids (the config hash does not know about grouping) and files.

Only methods whose `MethodSpec.groupable` is set group (the prompt methods): a linear probe trains a head on
cached features (reprolib.transfer.feature_cache) and never runs the backbone while training.
`group_configs` forms the groups for a sweep: same (profile, backbone, network, ticket,
target, protocol, epochs, device); at most `max_runs` per group.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from reprolib.batching import minibatches
from reprolib.devices import autocast, device_memory
from reprolib.records import one_line_error
from reprolib.transfer import registry as method_registry
from reprolib.transfer.config import TransferConfig
from reprolib.transfer.run import finish_run, finished_record, prepare_run, run_transfer
from reprolib.transfer.train import EpochTotals, FitResult, FitSettings, RunLoop, Splits

MAX_RUNS = 16   # runs per group: 16 few-shot or full-data runs of batch 64 = one backbone batch <= 1,024


def group_key(cfg: TransferConfig) -> tuple | None:
    """What runs must share to train together; None for a method that never groups (LP)."""
    if not method_registry.get(cfg.method).groupable:
        return None
    return (cfg.profile, cfg.backbone, cfg.network, cfg.kind, cfg.level, cfg.pretrained_dir, cfg.replicate,
            cfg.target, cfg.protocol, cfg.epochs, cfg.device, cfg.results_path)


def group_configs(configs: list[Any], max_runs: int = MAX_RUNS) -> list[list[Any]]:
    """The configs in groups (first-seen order; a config that never groups is alone)."""
    groups: dict[Any, list[list[Any]]] = {}
    order: list[list[Any]] = []
    for index, cfg in enumerate(configs):
        key = group_key(cfg) if isinstance(cfg, TransferConfig) else None
        key = ("alone", index) if key is None else key
        if key not in groups or len(groups[key][-1]) >= max_runs:
            groups.setdefault(key, []).append([])
            order.append(groups[key][-1])
        groups[key][-1].append(cfg)
    return order


@dataclass(frozen=True)
class RunError:
    """A run of a group that raised: its one-line error and traceback (the sweep writes its
    failure record; its group-mates are unaffected)."""

    error: str
    traceback: str


def run_group(configs: list[TransferConfig]) -> list[dict[str, Any] | RunError]:
    """Run (or skip) every config of one group, training the missing ones together; their
    records in the configs' order (each written by reprolib.transfer.run.finish_run).

    If the grouped path raises (one bad config, say), the group's runs are retried one at a
    time, so a run that fails alone fails alone: it comes back as a RunError, the others as
    records. KeyboardInterrupt and SystemExit propagate.
    """
    try:
        return _run_together(configs)
    except Exception:   # find the run(s) at fault: each on its own
        return [_run_alone(cfg) for cfg in configs]


def _run_alone(cfg: TransferConfig) -> dict[str, Any] | RunError:
    try:
        return run_transfer(cfg)
    except Exception as err:   # this run's failure, not its group's
        return RunError(one_line_error(err), traceback.format_exc())


def _run_together(configs: list[TransferConfig]) -> list[dict[str, Any]]:
    records = {i: finished_record(cfg) for i, cfg in enumerate(configs)}   # OOD stage completed
    todo = [i for i, record in records.items() if record is None]
    if len(todo) <= 1:
        return [records[i] or run_transfer(cfg) for i, cfg in enumerate(configs)]
    first = prepare_run(configs[todo[0]])
    runs = [first] + [prepare_run(configs[i], loaded=(first.backbone, first.ticket)) for i in todo[1:]]
    results = fit_group(first.backbone, [(run.method, run.splits, run.settings) for run in runs])
    for i, run, result in zip(todo, runs, results):
        records[i] = finish_run(run, result)
    return [records[i] for i in range(len(configs))]


def fit_group(backbone, members: list[tuple[Any, Splits, FitSettings]]) -> list[FitResult]:
    """`fit` for several prompt methods on one `backbone`, one backbone pass per step (module doc).

    Every member must have the same number of epochs and device.
    """
    loops = [RunLoop(method, splits, settings) for method, splits, settings in members]
    epochs, device = loops[0].settings.epochs, loops[0].settings.device
    if any(loop.settings.epochs != epochs or loop.settings.device != device for loop in loops):
        raise ValueError("grouped runs need the same epochs and device")
    for epoch in range(epochs):
        for loop in loops:
            loop.start_epoch(epoch)
        stats = _train_group_epoch(backbone, loops, device)
        for loop, loop_stats in zip(loops, stats):
            loop.end_epoch(epoch, loop_stats)
    return [loop.result() for loop in loops]


def _batches(loop: RunLoop) -> Iterator[tuple[Tensor, Tensor]]:
    """One run's training minibatches for one epoch, as its own `fit` would draw them."""
    stored = loop.stored.train
    transform = loop.method.train_transform
    for x, y in stored.batches(minibatches(len(stored), loop.settings.batch_size, loop.generator)):
        yield (transform(x) if transform is not None else x), y


def _train_group_epoch(backbone, loops: list[RunLoop], device: str) -> list[dict[str, float]]:
    """One epoch of every run, stepping together until the longest epoch ends."""
    streams = [_batches(loop) for loop in loops]
    totals = [EpochTotals(device) for _ in loops]
    while True:
        step = [(k, batch) for k, stream in enumerate(streams) if (batch := next(stream, None)) is not None]
        if not step:
            break
        _group_step(backbone, [(loops[k], x, y) for k, (x, y) in step], [totals[k] for k, _ in step], device)
    return [total.mean() for total in totals]


ACTIVATION_SHARE = 0.5   # of a GPU's memory that one grouped backbone pass's saved activations may take


def pass_images(backbone, device: str) -> int | None:
    """The most images one grouped backbone pass takes on `device` (module docstring); None: no bound
    (the CPU, where runs are not grouped by default, and devices without memory figures)."""
    memory = device_memory(device) if str(device).startswith("cuda") else 0
    if not memory:
        return None
    from reprolib.models.flops import activation_bytes

    return max(1, int(ACTIVATION_SHARE * memory // activation_bytes(backbone.name)))


def _parts(batch: list[tuple[RunLoop, Tensor, Tensor]], limit: int | None) -> list[list[int]]:
    """Consecutive runs of a step whose images fit one pass (a run alone always does)."""
    parts: list[list[int]] = [[]]
    images = 0
    for k, (_, x, _) in enumerate(batch):
        if parts[-1] and limit is not None and images + len(x) > limit:
            parts.append([])
            images = 0
        parts[-1].append(k)
        images += len(x)
    return parts


def _group_step(backbone, batch: list[tuple[RunLoop, Tensor, Tensor]], totals: list[EpochTotals],
                device: str) -> None:
    """Zero the runs' gradients, backbone passes over their concatenated prompted inputs (in parts
    of at most `pass_images`), each part's summed losses backwards, then each run's optimisers step."""
    for loop, _, _ in batch:
        for opt in loop.method.optimizers:
            opt.zero_grad(set_to_none=True)
    logits, losses = [None] * len(batch), [None] * len(batch)
    for part in _parts(batch, pass_images(backbone, device)):
        with autocast(device):
            prompted = [batch[k][0].method.prompted(batch[k][1]) for k in part]
            source = backbone(torch.cat(prompted)).split([len(z) for z in prompted])
            for k, out in zip(part, source):
                logits[k] = batch[k][0].method.target_logits(out)
        for k in part:
            losses[k] = F.cross_entropy(logits[k].float(), batch[k][2])
        torch.stack([losses[k] for k in part]).sum().backward()
    for (loop, _, y), lg, loss, total in zip(batch, logits, losses, totals):
        for opt in loop.method.optimizers:
            opt.step()
        total.add(loss, lg, y)
