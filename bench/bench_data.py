"""The paper data path at real split sizes, on synthetic data in torchvision's formats.

    python bench/bench_data.py [--root data/bench] [--sets cifar10 svhn gtsrb] [--out bench/results.md]

For each set, written once by the dry-run writers at (about) its real size (CIFAR-10
50,000 / 10,000; SVHN 73,260 / 26,030; GTSRB 26,660 / 12,642 with image sides spread
log-normally over 15-250 px), each measurement runs in a fresh process:
- `cache`: the image caches the paper profile's methods read, built (decode + resize once);
- `lp`, `vp-ilm`, `smm-ilm`: one epoch of the method as the paper profile runs it (RLT
  protocol, sides from MethodSpec.load_side for ResNet-50), with the network replaced by a
  tiny stand-in of the same interface (224 px RGB in, 1,000 logits), so the CPU measures the
  data path: gather by index, float on the device, resize, the method's own modules. LP and
  VP walk the whole epoch (LP: the feature pass over train and test, then the head; VP: the
  ILM mapping pass, the training pass and the test pass); SMM's mask generator costs ~100x
  the stand-in per image on a CPU, so its epoch is cut to `--smm-batches` training and test
  minibatches (the path per minibatch is the full one; LP and VP show memory does not grow
  over an epoch);
- `public`: the public codes' pipeline on the same files: torchvision's dataset with a
  per-image PIL Resize(224) + ToTensor in a DataLoader (2 workers, batch 128, shuffled),
  against ours: gather + to float + resize to 224 per minibatch, one process, one thread;
  both over the same number of images, per core. And the host's share of ours when a GPU runs
  it (gather uint8 minibatches by index; the conversion runs on the device): what a CPU core
  must sustain to feed a GPU.
Methods run with the paper profile's protocol (`rlt`: training batch 128, test batch 256).
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

REPO = Path(__file__).resolve().parent.parent
SIZES = {"cifar10": (5000, 1000, None), "svhn": (7326, 2603, None), "gtsrb": (620, 294, (15, 250))}
SECTION = "## Paper data path at real split sizes"


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
    from reprolib.models.registry import get_spec

    torch.manual_seed(0)
    resnet50 = get_spec("resnet50")   # the network it stands in for
    return Backbone(_StandIn(), "stand-in", 224, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1000,
                    family=resnet50.family).eval()


def _splits(name: str, method: str, root: Path):
    from reprolib.data import get_dataset, info
    from reprolib.models.registry import get_spec
    from reprolib.protocols import get_protocol
    from reprolib.transfer import registry

    spec, protocol = registry.get(method), get_protocol("rlt")
    sides = {s: spec.load_side(get_spec("resnet50"), info(name), protocol, s) for s in ("train", "test")}
    return [get_dataset(name, s, root=root, size=sides[s]) for s in ("train", "test")], sides


def measure_cache(name: str, root: Path) -> dict:
    start = time.perf_counter()
    sides = {}
    for method in ("lp", "vp", "smm"):
        (train, test), used = _splits(name, method, root)
        sides[method] = used
    return {"seconds": time.perf_counter() - start, "sides": sides, "train": len(train), "test": len(test)}


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
        train, test = train.subset(torch.arange(batch * smm_batches)), test.subset(torch.arange(test_batch * smm_batches))
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


def measure_public(name: str, root: Path, images: int) -> dict:
    """The public pipeline against our gather-and-convert on the same files, images/s per core."""
    import torchvision.transforms as T

    from reprolib.data.paper import _OFFICIAL, _construct
    from reprolib.images import to_network
    from reprolib.data.integrity import bypassed_for_root

    torch.set_num_threads(1)
    cls_name, per_split, extra, _ = _OFFICIAL[name]
    with bypassed_for_root(root):
        dataset = _construct(name, cls_name, {**per_split["train"], **extra}, root, False)
    dataset.transform = T.Compose([T.Resize((224, 224)), T.ToTensor()])
    workers = 2
    loader = torch.utils.data.DataLoader(dataset, batch_size=128, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(0))
    meter, seen, start = _PeakAnon(), 0, time.perf_counter()
    for x, _ in loader:
        seen += len(x)
        if seen >= images:
            break
    public_s, public_peak = time.perf_counter() - start, meter.stop()
    (train, _), _ = _splits(name, "vp", root)   # the prompt-size copy: resized to 224 per minibatch
    meter, ours, start = _PeakAnon(), 0, time.perf_counter()
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    for begin in range(0, images, 128):
        x = to_network(train.gather(order[begin:begin + 128]), 3, 224)
        ours += len(x)
    ours_s, ours_peak = time.perf_counter() - start, meter.stop()
    host = {method: _host_share(name, method, root, images, order) for method in ("vp", "lp")}
    return {"public_per_core": seen / public_s / workers, "ours_per_core": ours / ours_s,
            "public_peak_anon_mb": public_peak, "ours_peak_anon_mb": ours_peak, "images": seen, "host": host}


def _host_share(name: str, method: str, root: Path, images: int, order: torch.Tensor) -> float:
    """Images/s of the host's part of our path when a GPU does the rest: gathering uint8 minibatches
    of the split `method` stores (VP: the prompt-size copy; LP and SMM: the 224 px copy) by index,
    nothing converted (float, resize and normalise run on the device). Pinning and the copy to the
    GPU are not measured: this machine has none."""
    (train, _), _ = _splits(name, method, root)
    order = order[order < len(train)]
    start, seen = time.perf_counter(), 0
    for begin in range(0, images, 128):
        seen += len(train.raw(order[begin:begin + 128]))   # uint8, as stored: no conversion on the host
    return seen / (time.perf_counter() - start)


def _child(args: argparse.Namespace) -> None:
    from reprolib.data.integrity import trust_dryrun_root

    root = Path(args.root)
    trust_dryrun_root(root)   # synthetic CIFAR / SVHN cannot match torchvision's md5s: this root only
    if args.child == "cache":
        out = measure_cache(args.set, root)
    elif args.child == "public":
        out = measure_public(args.set, root, args.public_images)
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


def _rows(name: str, args: argparse.Namespace) -> list[str]:
    from reprolib.dryrun.formats import write_synthetic_dataset

    n_train, n_test, side_range = SIZES[name]
    k = {"cifar10": 10, "svhn": 10, "gtsrb": 43}[name]
    from reprolib.data.integrity import DRYRUN_MARKER

    start = time.perf_counter()
    write_synthetic_dataset(name, args.root, n_train, n_test, num_classes=k, side_range=side_range)
    (Path(args.root) / DRYRUN_MARKER).write_text("synthetic benchmark data (bench/bench_data.py)\n")
    written = time.perf_counter() - start
    cache = _run_child("cache", name, args)
    rows = []
    asked = ", ".join(f"{m.upper()} at {sides['train']} px" for m, sides in cache["sides"].items())
    _emit(rows, f"| {name} | cache: decode + resize once ({asked} asked) "
            f"| {cache['train']:,} / {cache['test']:,} | {cache['seconds']:.0f} s (files written in {written:.0f} s) | | |")
    for method in ("lp", "vp", "smm"):
        r = _run_child(method, name, args)
        label = {"lp": "LP", "vp": "VP-ILM", "smm": f"SMM-ILM ({args.smm_batches} train + test minibatches)"}[method]
        _emit(rows, f"| {name} | {label}, one epoch, stand-in network | {r['train']:,} / {r['test']:,} "
                    f"| {r['seconds']:.1f} s | {r['images_per_s']:,.0f} | {r['peak_anon_mb']:,.0f} MB |")
    p = _run_child("public", name, args)
    ratio = p["ours_per_core"] / p["public_per_core"]
    _emit(rows, f"| {name} | public pipeline (PIL Resize 224 + ToTensor, 2 workers) per core | {p['images']:,} images "
                f"| | {p['public_per_core']:,.0f} | {p['public_peak_anon_mb']:,.0f} MB (main process) |")
    _emit(rows, f"| {name} | ours, all on the CPU: gather + float + resize 224 per minibatch, 1 thread | {p['images']:,} images "
                f"| | {p['ours_per_core']:,.0f} ({ratio:.1f}x public) | {p['ours_peak_anon_mb']:,.0f} MB |")
    for method, rate in p["host"].items():
        store = {"vp": "VP's prompt-size copy", "lp": "LP / SMM's 224 px copy"}[method]
        _emit(rows, f"| {name} | ours, the host's share with a GPU: gather uint8 minibatches of {store}, 1 thread "
                    f"| {p['images']:,} images | | {rate:,.0f} ({rate / p['public_per_core']:.0f}x public) | |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(REPO / "data" / "bench"))
    parser.add_argument("--sets", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--out", default=str(REPO / "bench" / "results.md"))
    parser.add_argument("--smm-batches", type=int, default=4)
    parser.add_argument("--public-images", type=int, default=5120)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--set", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return 0
    load = os.getloadavg()[0]
    rows = [row for name in args.sets for row in _rows(name, args)]
    section = [SECTION, "", f"Measured {time.strftime('%Y-%m-%d')} with `python bench/bench_data.py` on {os.cpu_count()} "
               f"cores, load average {load:.1f} at the start (other work shared the machine: rates are "
               "comparable within a row pair, not across machines). Peak anonymous memory is RssAnon: "
               "the caches' pages are shared, file-backed page cache.", "",
               "| set | what | train / test | time | images/s | peak anonymous memory |", "|---|---|---|---|---|---|",
               *rows, ""]
    out = Path(args.out)
    text = out.read_text() if out.is_file() else "# reprolib benchmarks\n"
    before, _, after = text.partition(SECTION)
    rest = after[after.find("\n## "):] if "\n## " in after else ""
    out.write_text(before.rstrip() + "\n\n" + "\n".join(section) + rest)
    print("\n".join(section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
