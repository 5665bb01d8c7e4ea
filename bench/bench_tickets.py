"""Speed benchmarks of the upstream model and ticket making, for `make bench`.

`bench_tickets(quick=False)` returns rows {"benchmark", "value", "unit", "note"} measured on
synthetic 28 x 28 data (no dataset needed): the small_resnet parameter count, training and
evaluation throughput (1 thread, and torch's default thread count), the time of one global
magnitude pruning step (small_resnet; resnet50 too unless quick), and the projected time of
one embedded ticket level. Numbers depend on the machine and its load; nothing asserts them.
"""

from __future__ import annotations

import time
from typing import Any

import torch


def _row(benchmark: str, value: float, unit: str, note: str = "") -> dict[str, Any]:
    return {"benchmark": benchmark, "value": round(float(value), 3), "unit": unit, "note": note}


def _train_throughput(threads: int, steps: int, batch_size: int) -> float:
    from reprolib.models import get_backbone
    from reprolib.sparsity.upstream import UpstreamRecipe, cpu_threads, train

    torch.manual_seed(0)
    backbone = get_backbone("small_resnet", weights=None)
    images = torch.rand(steps * batch_size, 1, 28, 28)
    labels = torch.randint(0, 10, (len(images),))
    recipe = UpstreamRecipe(epochs=1, batch_size=batch_size, num_threads=threads)
    with cpu_threads(threads):  # warm-up (first calls pick kernels)
        train(backbone, images[:2 * batch_size], labels[:2 * batch_size], recipe, progress=False)
    start = time.perf_counter()
    train(backbone, images, labels, recipe, progress=False)
    return len(images) / (time.perf_counter() - start)


def _eval_throughput(n: int) -> float:
    from reprolib.models import get_backbone
    from reprolib.sparsity.upstream import evaluate

    backbone = get_backbone("small_resnet", weights=None)
    images, labels = torch.rand(n, 1, 28, 28), torch.randint(0, 10, (n,))
    evaluate(backbone, images[:1000], labels[:1000])
    start = time.perf_counter()
    evaluate(backbone, images, labels)
    return n / (time.perf_counter() - start)


def _prune_seconds(name: str) -> tuple[float, int]:
    from reprolib.models import get_backbone
    from reprolib.sparsity.masks import full_mask, global_magnitude_prune

    net = get_backbone(name, weights=None).net
    mask = full_mask(net)
    start = time.perf_counter()
    global_magnitude_prune(net, mask, 0.2)
    return time.perf_counter() - start, sum(m.numel() for m in mask.values())


def bench_tickets(quick: bool = False) -> list[dict[str, Any]]:
    from reprolib.models import get_backbone
    from reprolib.sparsity.upstream import UpstreamRecipe

    steps = 10 if quick else 50
    rows = [_row("small_resnet parameters", sum(p.numel() for p in get_backbone("small_resnet", None).parameters()),
                 "count")]
    one = _train_throughput(1, steps, 128)
    rows.append(_row("small_resnet training, 1 thread", one, "img/s", f"batch 128, {steps} steps, SGD"))
    default_threads = torch.get_num_threads()
    if default_threads > 1:
        rows.append(_row(f"small_resnet training, {default_threads} threads",
                         _train_throughput(default_threads, steps, 128), "img/s", "batch 128"))
    rows.append(_row("small_resnet evaluation, 1 thread", _eval_throughput(2000 if quick else 10000), "img/s",
                     "batch 1000"))
    recipe = UpstreamRecipe()
    rows.append(_row("embedded ticket level (projected)", recipe.epochs * 60_000 / one, "s",
                     f"{recipe.epochs} epochs x 60,000 images at the 1-thread rate"))
    for name in ("small_resnet",) + (() if quick else ("resnet50",)):
        seconds, weights = _prune_seconds(name)
        rows.append(_row(f"global magnitude prune 20%, {name}", seconds, "s", f"{weights:,} prunable weights"))
    return rows


if __name__ == "__main__":
    for row in bench_tickets(quick=True):
        print(f"{row['benchmark']:<42}{row['value']:>12} {row['unit']:<6} {row['note']}")
