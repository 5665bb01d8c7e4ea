"""ImageNet-side measurements: a ticket's top-1 on an ImageNet folder, stored in its report.

`--imagenet DIR` is torchvision's ImageFolder layout, `DIR/train/<wnid>/*.JPEG` and
`DIR/val/<wnid>/*.JPEG` (class folders sorted = the 1000 torchvision class indices; a
smaller folder, as in the tests, has fewer classes and indexes the first ones). Evaluation
is the standard one: resize to 256/224 of the input side, center crop, the backbone's
mean/std. `evaluate_tickets(profile, DIR)` measures every network the profile's sweep uses
(dense, each one-shot or made level, each imported ticket) and writes the top-1 into its
sparsity.json as `upstream_test_accuracy` with `upstream_measured_on` (folder and image
count), which the ledger and the claims read. Under torchrun each process evaluates a
shard and the counts are summed (torch.distributed all_reduce).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from reprolib import paths
from reprolib.errors import ReprolibError
from reprolib.models import get_spec
from reprolib.sparsity import masks as M
from reprolib.sparsity.network import get_network, grid_networks
from reprolib.sparsity.oneshot import oneshot_reports

RESIZE_RATIO = 256 / 224   # evaluation resize before the center crop


def image_folder(root: str | os.PathLike, split: str, backbone: str, train: bool = False,
                 image_size: int | None = None, max_images: int | None = None):
    """torchvision ImageFolder of `root/split` with the backbone's evaluation (or training) transform."""
    from torchvision import datasets, transforms   # torchvision only where ImageNet is read

    folder = Path(root) / split
    if not folder.is_dir():
        raise ReprolibError(f"missing ImageNet folder {folder}: expected {root}/train and {root}/val "
                            "(torchvision ImageFolder layout: one folder per class)")
    spec = get_spec(backbone)
    side = image_size or spec.input_size
    normalize = transforms.Normalize(spec.mean, spec.std)
    if train:
        steps = [transforms.RandomResizedCrop(side), transforms.RandomHorizontalFlip()]
    else:
        steps = [transforms.Resize(round(side * RESIZE_RATIO)), transforms.CenterCrop(side)]
    dataset = datasets.ImageFolder(str(folder), transform=transforms.Compose([*steps, transforms.ToTensor(), normalize]))
    if max_images is not None and max_images < len(dataset):
        dataset = Subset(dataset, range(max_images))
    return dataset


def distributed() -> bool:
    """Whether this process is one of several (torchrun started it and the group is up)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def loader(dataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """A DataLoader over this process's shard (DistributedSampler under torchrun)."""
    sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=False) if distributed() else None
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=shuffle and sampler is None,
                      generator=generator, num_workers=0)


@torch.no_grad()
def top1(net: nn.Module, dataset, batch_size: int = 64, device: str = "cpu") -> tuple[float, int]:
    """(top-1 accuracy, images counted) of `net` on `dataset`; under torchrun each process takes
    every world-th image (no padding, so each image counts once) and the counts are summed."""
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if distributed() else (0, 1)
    shard = Subset(dataset, range(rank, len(dataset), world))
    net.eval().to(device)
    correct = total = 0
    for images, labels in DataLoader(shard, batch_size=batch_size, num_workers=0):
        correct += int((net(images.to(device)).argmax(dim=1).cpu() == labels).sum())
        total += len(labels)
    counts = torch.tensor([correct, total], dtype=torch.float64)
    if distributed():
        torch.distributed.all_reduce(counts)
    return float(counts[0] / max(counts[1], 1)), int(counts[1])


def _report_file(profile: Any, info) -> Path:
    """The sparsity.json a network's measurement goes to (dense: IMP level 0's report)."""
    artifacts = profile.path("artifacts")
    if info.kind == "imported":
        return Path(info.path) / "sparsity.json"
    kind, level = ("imp", 0) if info.kind == "dense" else (info.kind, info.level)
    return M.ticket_dir(artifacts, kind, level) / "sparsity.json"


def store_top1(report_file: Path, info, accuracy: float, where: str) -> None:
    """Write the measured top-1 into a ticket's report (creating a dense / one-shot report if needed)."""
    report = M.load_json(report_file) if report_file.is_file() else {
        "kind": info.kind, "level": info.level, "density": info.density, "density_rlt": info.density_rlt,
        "provenance": info.provenance}
    report |= {"upstream_test_accuracy": accuracy, "upstream_measured_on": where,
               "provenance": report.get("provenance", info.provenance)}
    M.save_json(report_file, report)


def evaluate_tickets(profile: Any, imagenet: str | os.PathLike, max_images: int | None = None,
                     batch_size: int = 64, device: str = "cpu") -> list[dict[str, Any]]:
    """Measure and store the ImageNet top-1 of every network the profile's sweep uses."""
    if profile.source != "imagenet":
        raise ReprolibError(f"tickets evaluate --imagenet needs a profile whose source is imagenet; "
                            f"{profile.profile}'s is {profile.source!r}")
    dataset = image_folder(paths.resolve(imagenet), "val", profile.backbone, max_images=max_images)
    if get_spec(profile.backbone).tickets == "oneshot":   # the one-shot levels' full reports first
        oneshot_reports(profile, list(profile.levels), ["imp"])
        oneshot_reports(profile, [profile.baseline_level], list(profile.baselines))
    rows = []
    for network, kind, level, pretrained_dir in grid_networks(profile):
        backbone, info = get_network(profile, network, kind, level, pretrained_dir)
        accuracy, counted = top1(backbone.net, dataset, batch_size, device)
        if not distributed() or torch.distributed.get_rank() == 0:
            store_top1(_report_file(profile, info), info, accuracy, f"ImageNet val {imagenet} ({counted} images)")
        rows.append({"ticket": info.id, "top1": accuracy, "images": counted})
    return rows
