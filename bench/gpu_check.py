"""`make gpu-check`: the paper path's first minutes on one GPU, in at most 8 minutes.

    python bench/gpu_check.py [--out bench/results.md] [--budget 480] [--dryrun-root data/dryrun] [--quick]

Stages, each timed; a stage that no longer fits the budget is skipped and says so:
1. rates: the paper backbone (ResNet-50, 224 px, random weights) forward at the test batch (256,
   float32 with TF32 convolutions, as evaluation, label mapping and LP features run) and forward
   + backward to the input at the training batch (128, bf16 autocast, as a prompt trains),
   channels_last; appended to bench/rates.csv with the GPU's name and the date. `sweep
   --dry-run` prices the paper grids with them from then on and says so.
2. prompt training: images/s of a VP and an SMM training step (prompt, backbone, label map,
   backward to the prompt, optimiser step) at batch 128, each against the bare forward +
   backward: what the prompt really adds (the cost model counts SMM's generator from its layer
   sizes, reprolib.models.flops).
3. peak device memory: a short epoch of LP, VP-ILM and SMM-ILM as the paper runs them (RLT:
   batch 128, test batch 256, CIFAR-10 at the side each method loads it) and 16 VP runs trained
   together as the sweep groups them on CUDA (2,048 images per backbone pass).
4. headline runs: the first paper-headline runs (1 shot, seed 1, the dense network; LP and
   VP-ILM on CIFAR-10 and Flowers-102) through `python -m reprolib sweep` on the dry-run data
   (`make data-dryrun`; random ResNet-50 weights are written into that root).
Results: the "## GPU check" section of --out and the rows of bench/rates.csv.

`--quick` runs every stage at toy size on the CPU (the paper-dryrun backbone, batch 4, the
dry-run protocol, CIFAR-10 only), so the tests check the script itself (tests/test_gpu_check.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
SECTION = "## GPU check (make gpu-check)"
HEADLINE_ONLY = "n_shot=1,seed=1,network=dense"


@dataclass(frozen=True)
class Setup:
    """What the stages run at: the full check on a GPU, or `--quick` on the CPU."""

    device: str
    backbone: str
    protocol: str
    batch: int
    test_batch: int
    steps: int
    seconds: float
    train_images: int
    group: int
    headline: dict

    @staticmethod
    def of(quick: bool) -> Setup:
        from reprolib.config import load_profile
        from reprolib.devices import resolve_device
        from reprolib.protocols import get_protocol

        if quick:
            return Setup("cpu", load_profile("paper-dryrun").backbone, "dryrun", 2, 2, 2, 1.0, 4, 2,
                         {"protocol": "dryrun", "targets": ["cifar10"], "device": "cpu"})
        rlt = get_protocol(load_profile("paper-headline").protocol)
        return Setup(resolve_device("cuda"), load_profile("paper-headline").backbone, rlt.name, rlt.batch_size,
                     rlt.test_batch_size, 40, 20.0, 4 * rlt.batch_size, 16, {})


def _target_split(setup: Setup, method: str, split: str, n: int):
    """n random uint8 CIFAR-10-shaped images at the side `method` loads `split` at (its real path)."""
    from reprolib.data.registry import info
    from reprolib.data.split import from_tensors
    from reprolib.models.registry import get_spec
    from reprolib.protocols import get_protocol
    from reprolib.transfer import registry

    target = info("cifar10")
    side = registry.get(method).load_side(get_spec(setup.backbone), target, get_protocol(setup.protocol), split)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=generator)
    return from_tensors(images, torch.arange(n) % target.num_classes, info=target)


def _method(setup: Setup, backbone, method: str, label_map: str | None):
    from reprolib.data.registry import info
    from reprolib.protocols import get_protocol
    from reprolib.transfer.method import MethodContext
    from reprolib.transfer.registry import build_method

    ctx = MethodContext(backbone=backbone, target=info("cifar10"), protocol=get_protocol(setup.protocol), epochs=1,
                        seed=1, device=setup.device, label_map=label_map)
    return build_method(method, ctx)


def _backbone(setup: Setup):
    from reprolib.models import get_backbone

    backbone = get_backbone(setup.backbone, weights=None).to(setup.device).eval().requires_grad_(False)
    if setup.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        backbone = backbone.to(memory_format=torch.channels_last)
    return backbone


def stage_rates(setup: Setup, rates_path: Path) -> list[str]:
    from bench_throughput import backbone_throughput

    from reprolib.sweep.rates import record_rates

    rows = backbone_throughput(setup.backbone, setup.device, setup.batch, setup.steps, setup.seconds,
                               by="make gpu-check", fwd_batch=setup.test_batch)
    record_rates(rows, rates_path)
    return [f"| rate | {r['backbone']} {r['pass']} at batch {r['batch']}, {r['px']} px, {r['precision']} "
            f"| {float(r['images_per_s']):,.4g} images/s |" for r in rows]


def stage_prompt_rates(setup: Setup) -> list[str]:
    from bench_throughput import backbone_passes, timed_rate

    from reprolib.devices import autocast

    backbone = _backbone(setup)
    x = torch.rand(setup.batch, backbone.channels, backbone.input_size, backbone.input_size, device=setup.device)
    bare = timed_rate(backbone_passes(backbone, x)[1], setup.batch, setup.steps, setup.device, setup.seconds)
    lines = [f"| prompt training | bare backbone forward+backward at batch {setup.batch} | {bare:,.4g} images/s |"]
    for method in ("vp", "smm"):
        run = _method(setup, backbone, method, "rlm")
        stored = run.prepare(_target_split(setup, method, "train", setup.batch))
        xb, yb = stored.batch(torch.arange(setup.batch))

        def step():
            for opt in run.optimizers:
                opt.zero_grad(set_to_none=True)
            with autocast(setup.device):
                logits = run.forward(xb)
            F.cross_entropy(logits.float(), yb).backward()
            for opt in run.optimizers:
                opt.step()

        rate = timed_rate(step, setup.batch, setup.steps, setup.device, setup.seconds)
        lines.append(f"| prompt training | {method} step (prompt + backbone + label map + optimiser) | "
                     f"{rate:,.4g} images/s ({rate / bare:.2f} of the bare pass) |")
    return lines


def _peak(setup: Setup, fit_runs) -> str:
    """Peak device memory of `fit_runs()` (allocated by tensors; reserved by the caching allocator)."""
    if not setup.device.startswith("cuda"):
        fit_runs()
        return "ran (no device memory to measure on the CPU)"
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    try:
        fit_runs()
    except torch.cuda.OutOfMemoryError:
        total = torch.cuda.get_device_properties(0).total_memory / 1024 ** 3
        return f"OUT OF MEMORY on a {total:.0f} GiB device"
    gib = 1024 ** 3
    return f"{torch.cuda.max_memory_allocated() / gib:.2f} GiB allocated, {torch.cuda.max_memory_reserved() / gib:.2f} GiB reserved"


def stage_memory(setup: Setup) -> list[str]:
    from reprolib.transfer.grouped import fit_group
    from reprolib.transfer.train import FitSettings, Splits, fit

    settings = FitSettings(epochs=1, batch_size=setup.batch, test_batch_size=setup.test_batch, seed=1,
                           device=setup.device)
    backbone, lines = _backbone(setup), []
    for method, label_map in (("lp", None), ("vp", "ilm"), ("smm", "ilm")):
        splits = Splits(_target_split(setup, method, "train", setup.train_images),
                        _target_split(setup, method, "test", setup.test_batch))
        peak = _peak(setup, lambda: fit(_method(setup, backbone, method, label_map), splits, settings))
        lines.append(f"| peak memory | {method}{'/' + label_map if label_map else ''}, one epoch of "
                     f"{setup.train_images} images at batch {setup.batch}, test batch {setup.test_batch} | {peak} |")
    splits = Splits(_target_split(setup, "vp", "train", 2 * setup.batch), _target_split(setup, "vp", "test", setup.test_batch))
    peak = _peak(setup, lambda: fit_group(backbone, [(_method(setup, backbone, "vp", "ilm"), splits, settings)
                                                       for _ in range(setup.group)]))
    lines.append(f"| peak memory | {setup.group} vp/ilm runs grouped ({setup.group * setup.batch} images per backbone "
                 f"pass) | {peak} |")
    return lines


def _headline_profile(setup: Setup, dryrun_root: Path, folder: Path) -> Path:
    """paper-headline on the dry-run data: its own name, data root, integrity rule and results folder."""
    import yaml

    from reprolib.config import profile_path

    values = yaml.safe_load(profile_path("paper-headline").read_text())
    values.update(profile="gpu-check-headline", data_root=str(dryrun_root), data_integrity="dryrun", download=False,
                  artifacts=str(folder / "artifacts"), figures=str(folder / "figures"), backbone=setup.backbone,
                  **setup.headline)
    path = folder / "gpu-check-headline.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def stage_headline(setup: Setup, dryrun_root: Path, seconds_left: float) -> list[str]:
    from reprolib.dryrun.weights import write_random_imagenet_weights
    from reprolib.dryrun import HUB_SUBDIR

    write_random_imagenet_weights(setup.backbone, checkpoint_dir=dryrun_root / HUB_SUBDIR)   # kept if there
    with tempfile.TemporaryDirectory() as scratch:
        profile = _headline_profile(setup, dryrun_root, Path(scratch))
        cmd = [sys.executable, "-m", "reprolib", "sweep", "--profile", str(profile), "--only", HEADLINE_ONLY,
               *(["--workers", "1"] if setup.device == "cpu" else [])]
        from reprolib.config import TRUST_ENV

        env = {**os.environ, TRUST_ENV: str(profile.resolve())}   # this file may trust the dry-run root
        start = time.perf_counter()
        try:
            done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=max(seconds_left, 1))
        except subprocess.TimeoutExpired as late:   # the finished runs are still reported
            out = late.stdout.decode(errors="replace") if isinstance(late.stdout, bytes) else (late.stdout or "")
            done = subprocess.CompletedProcess(cmd, "timed out", out, "stopped at the budget's end")
        seconds = time.perf_counter() - start
        records = [json.loads(p.read_text()) for p in (Path(scratch) / "artifacts" / "runs").glob("*.json")]
    tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or [""]
    lines = [f"| headline runs | `sweep --only {HEADLINE_ONLY}` on the dry-run data: exit {done.returncode}, "
             f"{len(records)} runs finished | {seconds:.0f} s ({tail[0][:120]}) |"]
    for record in sorted(records, key=lambda r: (r["config"]["target"], r["config"]["method"])):
        config, metrics = record["config"], record["metrics"]
        lines.append(f"| headline run | {config['target']} {config['method']} {config.get('label_map') or ''} "
                     f"1-shot seed 1 | accuracy {metrics['accuracy']:.3f} (random weights) |")
    return lines


def run_stages(setup: Setup, args: argparse.Namespace) -> list[str]:
    """Every stage in turn inside the budget; a stage that no longer fits says so."""
    deadline = time.perf_counter() + args.budget
    stages = [("rates", 60, lambda: stage_rates(setup, Path(args.rates))),
              ("prompt training", 60, lambda: stage_prompt_rates(setup)),
              ("peak memory", 90, lambda: stage_memory(setup)),
              ("headline runs", 60, lambda: stage_headline(setup, Path(args.dryrun_root), deadline - time.perf_counter()))]
    lines = []
    for name, needs, stage in stages:
        left = deadline - time.perf_counter()
        if left < needs:
            lines.append(f"| {name} | skipped: {left:.0f} s of the budget left, it needs about {needs} s | |")
            continue
        start = time.perf_counter()
        lines += stage()
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    from bench_table import replace_section

    from reprolib import paths
    from reprolib.devices import device_name

    parser = argparse.ArgumentParser(prog="python bench/gpu_check.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "bench" / "results.md"))
    parser.add_argument("--rates", default=None, help="default: bench/rates.csv under the workbook home")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for the whole check (default 8 min)")
    parser.add_argument("--dryrun-root", default=str(REPO / "data" / "dryrun"))
    parser.add_argument("--quick", action="store_true", help="every stage at toy size on the CPU (tests)")
    args = parser.parse_args(argv)
    args.rates = args.rates or str(paths.home() / "bench" / "rates.csv")
    setup = Setup.of(args.quick)
    start = time.perf_counter()
    lines = run_stages(setup, args)
    head = [f"Measured {time.strftime('%Y-%m-%d')} on {device_name(setup.device)} (torch {torch.__version__}, "
            f"load average {os.getloadavg()[0]:.1f}) by `python bench/gpu_check.py{' --quick' if args.quick else ''}` "
            f"in {time.perf_counter() - start:.0f} s; backbone {setup.backbone} with random weights, protocol "
            f"{setup.protocol}. The rates went to {args.rates}.", "", "| stage | what | result |", "|---|---|---|"]
    print(replace_section(args.out, SECTION, ["", *head, *lines]))
    return 0


if __name__ == "__main__":
    from reprolib.errors import ReprolibError

    try:
        sys.exit(main())
    except ReprolibError as err:   # e.g. no CUDA GPU visible: one line, exit 2
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
