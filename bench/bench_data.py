"""The paper data path at real split sizes, on synthetic data in torchvision's formats, like for like.

    python bench/bench_data.py [--root data/bench] [--sets cifar10 svhn gtsrb] [--scale 1.0] [--out bench/results.md]

For each set, written once by the dry-run writers at (about) its real size (CIFAR-10
50,000 / 10,000; SVHN 73,260 / 26,030; GTSRB 26,660 / 12,642 with image sides spread
log-normally over 15-250 px; `--scale` shrinks them for a trial), each measurement runs in a
fresh process:
- `cache`: our one-time decode + resize into the uint8 cache, for each side a paper method
  reads (ResNet-50: LP, SMM and the watermarks at 224 px; VP at the set's prompt size, 32 px),
  timed apart and amortised: per epoch of one 100-epoch run (RLT), and over every paper-grid
  run that reads that cache (the runs of the target whose method loads that side);
- `lp`, `vp`, `smm`: one epoch of the method as the paper profile runs it (RLT protocol,
  sides from MethodSpec.load_side), with the network replaced by a tiny stand-in of the same
  interface (224 px RGB in, 1,000 logits), so the CPU measures the data path and its memory;
  SMM's epoch is cut to `--smm-batches` minibatches (its mask generator dominates on a CPU);
- `pipelines`: per side a method reads, the images/s per core of the work each side of the
  comparison does per epoch, with the steps each includes marked (decode, resize, float,
  normalise, pin):
  * all on the CPU (no GPU): the public ILM-VP / RLT pipeline (torchvision's dataset, a PIL
    decode and Resize to the side, ToTensor, Normalize where RLT's LP normalises on the host, a
    DataLoader with 2 workers, per worker) against ours (gather the uint8 minibatch from the
    cache by index, float, normalise where the method does, one thread): decode and resize are
    in the cache row above, not here;
  * the host's share when a GPU trains: the public pipeline does all of the above on the host
    and pins the batch for the copy (timed here as a copy into a preallocated buffer: no CUDA
    to page-lock with); ours gathers into the prefetcher's pinned buffer (reprolib.data.prefetch)
    and nothing else: float, normalise (and VP's padding) run on the GPU. The copy to the GPU
    itself is a DMA on both sides and not timed (no GPU here).
  A side is resized per minibatch only where the method does it: the 32 px sets' caches keep
  their native side and LP, SMM and the watermarks resize to 224 on the device (on the CPU, in
  the all-CPU row); GTSRB's varied sides are resized once, in the cache, to the side each reads.
Peak anonymous memory (RssAnon, sampled every 20 ms: the memory map's pages are file-backed
page cache, not counted) and images/s are written as a section of bench/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
from torch import nn

from bench_table import replace_section   # beside this file: the script's folder is on sys.path

REPO = Path(__file__).resolve().parent.parent
SIZES = {"cifar10": (5000, 1000, None), "svhn": (7326, 2603, None), "gtsrb": (620, 294, (15, 250))}
SECTION = "## Paper data path at real split sizes"
RLT_EPOCHS = 100   # the paper protocol's epochs: a cache build is shared by every epoch of every run
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)   # ImageNet's: what the paper backbone normalises with


class _PeakAnon:
    """Peak RssAnon of this process (kB -> MB), sampled by a thread."""

    def __init__(self) -> None:
        self.peak, self._stop = 0, False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    self.peak = max(self.peak, int(line.split()[1]))
            time.sleep(0.02)

    def stop(self) -> float:
        self._stop = True
        self._thread.join()
        return self.peak / 1024


class _StandIn(nn.Module):
    """A ResNet-shaped stand-in: conv1 (stride 8) -> avgpool -> fc(1000); torchvision's names."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, kernel_size=8, stride=8)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.conv1(x)), 1))


def _stand_in_backbone():
    from reprolib.models.backbone import Backbone

    torch.manual_seed(0)
    return Backbone(_StandIn(), "stand-in", 224, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1000,
                    family="resnet").eval()


def _splits(name: str, method: str, root: Path):
    from reprolib.data import get_dataset, info
    from reprolib.models.registry import get_spec
    from reprolib.protocols import get_protocol
    from reprolib.transfer import registry

    spec, protocol = registry.get(method), get_protocol("rlt")
    sides = {s: spec.load_side(get_spec("resnet50"), info(name), protocol, s) for s in ("train", "test")}
    return [get_dataset(name, s, root=root, size=sides[s]) for s in ("train", "test")], sides


def _paper_sides(name: str) -> dict[int, list[str]]:
    """{side: the paper profile's methods that load `name`'s training split at that side}."""
    from reprolib.config import load_profile
    from reprolib.data import info
    from reprolib.models.registry import get_spec
    from reprolib.protocols import get_protocol
    from reprolib.transfer import registry

    profile = load_profile("paper")
    sides: dict[int, list[str]] = {}
    for method in dict.fromkeys(arm.split("/")[0] for arm in profile.methods):
        side = registry.get(method).load_side(get_spec(profile.backbone), info(name), get_protocol(profile.protocol),
                                              "train")
        sides.setdefault(side, []).append(method)
    return sides


def _grid_runs(name: str, methods: list[str]) -> int:
    """Paper-grid runs of target `name` with one of `methods`: they all read the same cache."""
    from reprolib.config import load_profile
    from reprolib.sweep.runner import build_grid

    return sum(1 for c in build_grid(load_profile("paper")) if c.target == name and c.method in methods)


def measure_cache(name: str, root: Path) -> dict:
    """Seconds to decode and resize the training and test splits into the cache, per side read
    (an earlier run's cache files of this set are removed first: the build is what is timed)."""
    from reprolib.data import get_dataset

    for old in (root / "cache").glob(f"{name}_*"):
        old.unlink()
    out = {}
    for side, methods in _paper_sides(name).items():
        start = time.perf_counter()
        train, test = (get_dataset(name, s, root=root, size=side) for s in ("train", "test"))
        out[side] = {"seconds": time.perf_counter() - start, "methods": methods, "runs": _grid_runs(name, methods),
                     "train": len(train), "test": len(test), "stored": train.image_shape[-1]}
    return out


def measure_method(name: str, method: str, root: Path, smm_batches: int) -> dict:
    from reprolib.protocols import get_protocol
    from reprolib.transfer.method import MethodContext
    from reprolib.transfer.registry import build_method
    from reprolib.transfer.train import FitSettings, Splits, fit

    torch.set_num_threads(1)
    (train, test), sides = _splits(name, method, root)
    protocol = get_protocol("rlt")   # the paper profile's: its training and test batches
    batch, test_batch = protocol.batch_size_for(name), protocol.test_batch_size
    if method == "smm":   # cut epoch (module docstring): the first minibatches of train and test
        train = train.subset(torch.arange(min(len(train), batch * smm_batches)))
        test = test.subset(torch.arange(min(len(test), test_batch * smm_batches)))
    meter = _PeakAnon()
    start = time.perf_counter()
    ctx = MethodContext(backbone=_stand_in_backbone(), target=train.info, protocol=protocol, epochs=1,
                        seed=1, label_map=None if method == "lp" else "ilm")
    result = fit(build_method(method, ctx), Splits(train, test),
                 FitSettings(epochs=1, batch_size=batch, test_batch_size=test_batch, seed=1))
    seconds = time.perf_counter() - start
    images = len(train) * (1 if method == "lp" else 2) + len(test)   # prompts: mapping pass + training pass
    return {"seconds": seconds, "images_per_s": images / seconds, "peak_anon_mb": meter.stop(), "sides": sides,
            "train": len(train), "test": len(test), "accuracy": result.curves["test_accuracy"][-1]}


def _public_rate(name: str, root: Path, side: int, normalise: bool, images: int) -> dict:
    """The public pipeline at `side`: PIL decode + Resize + ToTensor (+ Normalize), 2 DataLoader
    workers, batch 128, and the main process's copy of each batch into a preallocated buffer
    (what pin_memory does); images/s per worker, peak anonymous memory of the main process."""
    import torchvision.transforms as T

    from reprolib.data.integrity import bypassed_for_root
    from reprolib.data.paper import _OFFICIAL, _construct

    cls_name, per_split, extra, _ = _OFFICIAL[name]
    with bypassed_for_root(root):
        dataset = _construct(name, cls_name, {**per_split["train"], **extra}, root, False)
    steps = [T.Resize((side, side)), T.ToTensor()]
    dataset.transform = T.Compose(steps + ([T.Normalize(MEAN, STD)] if normalise else []))
    workers = 2
    loader = torch.utils.data.DataLoader(dataset, batch_size=128, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(0))
    pinned = torch.empty(128, 3, side, side)
    meter, seen, start = _PeakAnon(), 0, time.perf_counter()
    for x, _ in loader:
        pinned[:len(x)].copy_(x)
        seen += len(x)
        if seen >= images:
            break
    seconds = time.perf_counter() - start
    return {"per_core": seen / seconds / workers, "peak_anon_mb": meter.stop(), "images": seen}


def _ours_rate(split, side: int, normalise: bool, images: int, host_share: bool) -> float:
    """Our per-minibatch work, one thread: all on the CPU (gather + float (+ resize where the cache
    keeps a smaller native side, + normalise)), or the host's share with a GPU (the prefetcher's
    gather into its buffer; the rest runs on the GPU)."""
    from reprolib.data.split import to_float
    from reprolib.images import resize

    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))
    buffer = torch.empty((128, *split.image_shape), dtype=split.dtype)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    start, seen = time.perf_counter(), 0
    while seen < images:
        idx = order[seen % len(split):][:128]
        rows = split.raw_into(idx, buffer)
        if not host_share:
            x = resize(to_float(rows), side)   # a no-op where the cache holds the side itself
            if normalise:
                x = (x - mean) / std
        seen += len(idx)
    return seen / (time.perf_counter() - start)


def measure_pipelines(name: str, root: Path, images: int) -> dict:
    """Per side a paper method reads: the public pipeline and ours, all on the CPU and as the
    host's share with a GPU (module docstring)."""
    from reprolib.data import get_dataset
    from reprolib.transfer import registry

    torch.set_num_threads(1)
    out = {}
    for side, methods in _paper_sides(name).items():
        # RLT's LP (the method without an input prompt) normalises on the host; prompts after prompting
        normalise = any(not registry.get(method).input_prompt for method in methods)
        split = get_dataset(name, "train", root=root, size=side)
        public = _public_rate(name, root, side, normalise, images)
        out[side] = {"methods": methods, "normalise": normalise, "public": public, "stored": split.image_shape[-1],
                     "ours_cpu": _ours_rate(split, side, normalise, images, host_share=False),
                     "ours_host": _ours_rate(split, side, normalise, images, host_share=True)}
    return out


def _child(args: argparse.Namespace) -> None:
    from reprolib.data.integrity import trust_dryrun_root

    root = Path(args.root)
    trust_dryrun_root(root)   # synthetic CIFAR / SVHN cannot match torchvision's md5s: this root only
    if args.child == "cache":
        out = measure_cache(args.set, root)
    elif args.child == "pipelines":
        out = measure_pipelines(args.set, root, args.public_images)
    else:
        out = measure_method(args.set, args.child, root, args.smm_batches)
    print("RESULT " + json.dumps(out))


def _run_child(kind: str, name: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--set", name, "--root", args.root,
           "--smm-batches", str(args.smm_batches), "--public-images", str(args.public_images)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{kind} {name} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(lines[-1][len("RESULT "):])


def _emit(rows: list[str], row: str) -> None:
    """Keep a row and show it at once (a long run shows its progress)."""
    rows.append(row)
    print(row, flush=True)


def _write_set(name: str, args: argparse.Namespace) -> float:
    """The synthetic set at `--scale` of its real size; seconds it took."""
    from reprolib.data.integrity import DRYRUN_MARKER
    from reprolib.dryrun.formats import write_synthetic_dataset

    n_train, n_test, side_range = SIZES[name]
    k = {"cifar10": 10, "svhn": 10, "gtsrb": 43}[name]
    start = time.perf_counter()
    write_synthetic_dataset(name, args.root, max(1, round(n_train * args.scale)), max(1, round(n_test * args.scale)),
                            num_classes=k, side_range=side_range)
    (Path(args.root) / DRYRUN_MARKER).write_text("synthetic benchmark data (bench/bench_data.py)\n")
    return time.perf_counter() - start


def _rows(name: str, args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(rows of the epochs-and-memory table, rows of the like-for-like table) of one set."""
    written = _write_set(name, args)
    epochs, pipelines = [], []
    for side, c in _run_child("cache", name, args).items():
        one_run = c["seconds"] / RLT_EPOCHS
        _emit(epochs, f"| {name} | cache build for {side} px, stored at {c['stored']} px: decode + resize, once "
                      f"(read by {', '.join(c['methods'])}; "
                      f"files written in {written:.0f} s) | {c['train']:,} / {c['test']:,} | {c['seconds']:.0f} s | "
                      f"amortised: {one_run:.2f} s per epoch of one {RLT_EPOCHS}-epoch run, "
                      f"{one_run / max(c['runs'], 1) * 1000:.2f} ms per epoch over the paper grid's {c['runs']:,} runs "
                      "that read it | |")
    for method in ("lp", "vp", "smm"):
        r = _run_child(method, name, args)
        label = {"lp": "LP", "vp": "VP-ILM", "smm": f"SMM-ILM ({args.smm_batches} train + test minibatches)"}[method]
        _emit(epochs, f"| {name} | {label}, one epoch, stand-in network | {r['train']:,} / {r['test']:,} "
                      f"| {r['seconds']:.1f} s | {r['images_per_s']:,.0f} | {r['peak_anon_mb']:,.0f} MB |")
    for side, r in _run_child("pipelines", name, args).items():
        norm, public = ("yes" if r["normalise"] else "-"), r["public"]["per_core"]
        resized = int(r["stored"]) != int(side)   # the cache keeps the native side: resized per minibatch
        where = f"| {name} | {side} px ({', '.join(r['methods'])}; cache at {r['stored']} px) "
        _emit(pipelines, where + f"| public, on the host with or without a GPU (2 workers, per worker) | yes | yes | yes "
                                 f"| {norm} | yes (copy) | {public:,.0f} | 1.0x |")
        _emit(pipelines, where + f"| ours, all on the CPU (1 thread) | cache | {'yes' if resized else 'cache'} | yes "
                                 f"| {norm} | - | {r['ours_cpu']:,.0f} | {r['ours_cpu'] / public:.1f}x |")
        _emit(pipelines, where + f"| ours, the host's share with a GPU: gather into the pinned buffer (1 thread) | cache "
                                 f"| {'GPU' if resized else 'cache'} | GPU | {'GPU' if r['normalise'] else '-'} "
                                 f"| yes (the gather) | {r['ours_host']:,.0f} | {r['ours_host'] / public:.0f}x |")
    return epochs, pipelines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(REPO / "data" / "bench"))
    parser.add_argument("--sets", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--out", default=str(REPO / "bench" / "results.md"))
    parser.add_argument("--smm-batches", type=int, default=4)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the real split sizes (a trial run)")
    parser.add_argument("--public-images", type=int, default=5120)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--set", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return 0
    load = os.getloadavg()[0]
    epochs, pipelines = [], []
    for name in args.sets:
        a, b = _rows(name, args)
        epochs, pipelines = epochs + a, pipelines + b
    scale = "at their real sizes" if args.scale == 1 else f"at {args.scale} of their real sizes"
    section = ["", f"Measured {time.strftime('%Y-%m-%d')} with `python bench/bench_data.py` ({scale}) on "
               f"{os.cpu_count()} cores, load average {load:.1f} at the start (other work shared the machine: rates "
               "are comparable within a set, not across machines). Peak anonymous memory is RssAnon: the caches' "
               "pages are shared, file-backed page cache.", "",
               "| set | what | train / test | time | images/s | peak anonymous memory |", "|---|---|---|---|---|---|",
               *epochs, "", "Like for like, per side a paper method reads: which steps each side does per epoch "
               "(yes: on the host, timed; cache: once, in the cache build above; GPU: on the device; -: not in "
               "the method), images/s per core:", "",
               "| set | side (read by) | pipeline | decode | resize | float | normalise | pin | images/s per core "
               "| vs public |", "|---|---|---|---|---|---|---|---|---|---|", *pipelines]
    print(replace_section(args.out, SECTION, section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
