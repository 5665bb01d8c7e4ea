"""Tickets made on ImageNet: IMP with rewinding, or gradual magnitude pruning with fine-tuning.

`prune_on_imagenet(profile, DIR, levels)` writes our layout `<artifacts>/tickets/imp/level_XX/
{model.pth, mask.pth, sparsity.json}` for a pretrained (spec `tickets="oneshot"`) backbone:

- level 0: the pretrained dense weights, their ImageNet top-1 measured on DIR/val;
- level L: the global magnitude mask of level L-1's trained weights with `prune_fraction`
  of the remaining weights removed (the profile's `tickets:` recipe, as in the embedded
  IMP), then `epochs_per_level` epochs of SGD with the mask held, from the rewind point
  (method "imp": the level-0 weights after `rewind_epoch` epochs; 0 = the pretrained ones)
  or from level L-1's trained weights (method "gmp": prune, then fine-tune). Its report holds
  the measured top-1 (`upstream_test_accuracy`), provenance "here" and the recipe.

The recipe is `tickets.imagenet` in the profile (ImageNetRecipe; its `name` labels it).
Resumable per level: a level whose sparsity.json exists is kept (and its recipe checked).
Multi-GPU / multi-process: start it under torchrun (`torchrun --nproc_per_node N -m reprolib
tickets prune --imagenet DIR`): each process trains on its DistributedSampler shard through
DistributedDataParallel (backend nccl on CUDA, gloo on CPU); every process computes the same
mask from the same synchronised weights, and rank 0 alone writes. On Slurm, `--submitit`
submits that same entry point through submitit (`submit_pruning`), one task per GPU.
get_network then uses these levels instead of pruning the pretrained weights once.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated, Any

import torch
import torch.nn.functional as F

from reprolib import paths
from reprolib.config import Count, NonNegative, NonNegativeFloat, Positive, Seed, choice_of, schema, validated
from reprolib.errors import ReprolibError
from reprolib.models import get_backbone, get_spec
from reprolib.sparsity import imagenet as I
from reprolib.sparsity import masks as M
from reprolib.sparsity.recipe import TicketRecipe, target_density

METHODS = ("imp", "gmp")


@schema("tickets.imagenet key", "tickets.imagenet.")
class ImageNetRecipe:
    """How tickets are made on ImageNet (the profile's `tickets.imagenet`; these are defaults)."""

    name: str = "gmp-finetune-1ep"   # what figures and reports call this recipe
    method: Annotated[str, choice_of("tickets.imagenet.method", lambda: METHODS)] = "gmp"   # imp (rewind, retrain) | gmp (prune, fine-tune)
    epochs_per_level: Count = 1
    lr: Positive = 0.001             # SGD, constant per level
    momentum: NonNegativeFloat = 0.9
    weight_decay: NonNegativeFloat = 1e-4
    rewind_epoch: NonNegative = 0    # imp: level-0 epoch the survivors rewind to (0 = pretrained weights)
    batch_size: Count = 64
    image_size: NonNegative = 0      # 0 = the backbone's input size
    max_train_images: NonNegative = 0   # 0 = the whole train folder
    max_val_images: NonNegative = 0     # 0 = the whole val folder
    seed: Seed = 0

    @classmethod
    def for_profile(cls, profile: Any) -> "ImageNetRecipe":
        values = dict(TicketRecipe.for_profile(profile).imagenet)
        return validated(ImageNetRecipe, values, "tickets.imagenet")


def _limit(n: int) -> int | None:
    return n or None


class ImageNetPruning:
    """One run of `prune_on_imagenet`: the profile, data, recipes and this process's rank."""

    def __init__(self, profile: Any, imagenet: str | os.PathLike, device: str):
        self.profile, self.device = profile, device
        self.recipe, self.tickets = ImageNetRecipe.for_profile(profile), TicketRecipe.for_profile(profile)
        self.artifacts = profile.path("artifacts")
        root, side = paths.resolve(imagenet), self.recipe.image_size or None
        self.train_set = I.image_folder(root, "train", profile.backbone, train=True, image_size=side,
                                        max_images=_limit(self.recipe.max_train_images))
        self.val_set = I.image_folder(root, "val", profile.backbone, image_size=side,
                                      max_images=_limit(self.recipe.max_val_images))
        self.where = f"ImageNet val {imagenet} ({len(self.val_set)} images)"
        self.rank = torch.distributed.get_rank() if I.distributed() else 0

    def level(self, level: int) -> dict[str, Any]:
        """Make (or find) one level; returns its report with `status`."""
        directory = M.ticket_dir(self.artifacts, "imp", level)
        if M.is_complete(directory) and (directory / "model.pth").is_file():
            report = M.load_json(directory / "sparsity.json")
            if report.get("imagenet_recipe") != dataclasses.asdict(self.recipe):
                raise ReprolibError(f"{directory} was made with another tickets.imagenet recipe; delete "
                                    f"{directory.parent} to remake it, or restore the recipe")
            return {**report, "status": "existing"}
        if level == 0:
            backbone = get_backbone(self.profile.backbone, weights="default",
                                    root=paths.torch_hub_dir(self.profile.path("data_root")),
                                    download=self.profile.download)
            mask = M.full_mask(backbone.net, self.tickets.exclude)
        else:
            backbone, mask = self._next_level(level)
        return self._save(directory, level, backbone.net, mask)

    def _next_level(self, level: int):
        parent = M.ticket_dir(self.artifacts, "imp", level - 1)
        if not (parent / "model.pth").is_file():
            raise ReprolibError(f"level {level} needs level {level - 1} at {parent}; make the levels in order")
        trained = get_backbone(self.profile.backbone, weights=parent / "model.pth")
        mask = M.global_magnitude_prune(trained.net, M.load_tensors(parent / "mask.pth"), self.tickets.prune_fraction)
        start = trained if self.recipe.method == "gmp" else self._rewind_point()
        M.apply_mask(start.net, mask)
        self._train(start.net, mask, self.recipe.epochs_per_level, seed=self.recipe.seed + level)
        return start, mask

    def _rewind_point(self):
        """IMP's rewind weights: level 0's after `rewind_epoch` epochs (cached in level_00/rewind.pth)."""
        dense_dir = M.ticket_dir(self.artifacts, "imp", 0)
        rewind = dense_dir / "rewind.pth"
        if self.recipe.rewind_epoch == 0:
            return get_backbone(self.profile.backbone, weights=dense_dir / "model.pth")
        if not rewind.is_file():
            backbone = get_backbone(self.profile.backbone, weights=dense_dir / "model.pth")
            self._train(backbone.net, M.load_tensors(dense_dir / "mask.pth"), self.recipe.rewind_epoch, self.recipe.seed)
            if self.rank == 0:
                M.save_tensors(rewind, backbone.net.state_dict())
            _barrier()
        return get_backbone(self.profile.backbone, weights=rewind)

    def _train(self, net, mask: dict[str, torch.Tensor], epochs: int, seed: int) -> None:
        """`epochs` of SGD on this process's shard with the mask held (DDP under torchrun)."""
        net.to(self.device).train()
        model = torch.nn.parallel.DistributedDataParallel(net) if I.distributed() else net
        r = self.recipe
        optimizer = torch.optim.SGD(net.parameters(), lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay)
        device_mask = {k: v.to(self.device) for k, v in mask.items()}
        for epoch in range(epochs):
            data = I.loader(self.train_set, r.batch_size, shuffle=True, seed=seed * 1000 + epoch)
            if hasattr(data.sampler, "set_epoch"):
                data.sampler.set_epoch(epoch)
            for images, labels in data:
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(model(images.to(self.device)), labels.to(self.device)).backward()
                optimizer.step()
                M.apply_mask(net, device_mask)   # pruned weights stay exactly zero
        net.cpu().eval()

    def _save(self, directory: Path, level: int, net, mask: dict[str, torch.Tensor]) -> dict[str, Any]:
        accuracy, _ = I.top1(net, self.val_set, self.recipe.batch_size, self.device)
        net.cpu()
        overall, _ = M.density(mask)
        stem, classifier = get_spec(self.profile.backbone).prune_exclude
        report = {"kind": "imp", "level": level, "backbone": self.profile.backbone, "provenance": "here",
                  "made_on": "imagenet", "density": overall, "density_target": target_density(self.tickets, level),
                  "density_rlt": M.density_rlt(net, mask, stem=stem, classifier=classifier),
                  "upstream_test_accuracy": accuracy, "upstream_measured_on": self.where,
                  "imagenet_recipe": dataclasses.asdict(self.recipe), "recipe": {"tickets": self.tickets.making_dict()},
                  "train_seconds": 0.0}
        if self.rank == 0:
            M.save_tensors(directory / "model.pth", net.state_dict())
            M.save_tensors(directory / "mask.pth", mask)
            M.save_report(directory, report)   # last: the level is complete
        _barrier()
        return {**report, "status": "made"}


def _barrier() -> None:
    if I.distributed():
        torch.distributed.barrier()


def start_distributed(device: str) -> bool:
    """Join the torchrun process group when WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU); returns whether it did."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or I.distributed():
        return I.distributed()
    torch.distributed.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def prune_on_imagenet(profile: Any, imagenet: str | os.PathLike, levels: list[int], device: str = "cpu") -> list[dict[str, Any]]:
    """Make levels 0..max(levels) (every level in between is needed); returns the requested levels' reports."""
    if get_spec(profile.backbone).tickets != "oneshot":
        raise ReprolibError(f"ImageNet pruning needs a pretrained ImageNet backbone; {profile.backbone} is trained here "
                            "(use `python -m reprolib tickets --profile ...`)")
    started = start_distributed(device)
    if device.startswith("cuda") and started:
        device = f"cuda:{torch.cuda.current_device()}"
    run = ImageNetPruning(profile, imagenet, device)
    reports = {level: run.level(level) for level in range(max(levels) + 1)}
    return [reports[level] for level in sorted(set(levels))]


def submit_pruning(profile_name: str, imagenet: str | os.PathLike, levels: list[int], folder: str | os.PathLike,
                   cluster: str | None = None, tasks: int = 1, slurm: dict[str, Any] | None = None):
    """Submit `prune_on_imagenet` through submitit: one job, `tasks` processes (one per GPU) in
    one torch.distributed group; `cluster` None = auto (Slurm when there), "local" or "debug".
    Returns the submitit Job (`.result()` waits for the reports).
    Many parameters because: what to run (profile, folder, levels) and where (log folder, cluster, tasks, Slurm options).
    """
    import submitit   # only where jobs are submitted

    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    gpus = {"gpus_per_node": tasks} if torch.cuda.is_available() and cluster != "debug" else {}
    executor.update_parameters(nodes=1, tasks_per_node=tasks, **gpus, **(slurm or {}))
    return executor.submit(_submitted_task, profile_name, str(imagenet), list(levels))


def _submitted_task(profile_name: str, imagenet: str, levels: list[int]) -> list[dict[str, Any]]:
    """The body of a submitit task: join the job's process group, then prune."""
    import submitit

    from reprolib.config import load_profile

    if submitit.JobEnvironment().num_tasks > 1:
        submitit.helpers.TorchDistributedEnvironment().export()   # RANK, WORLD_SIZE, MASTER_ADDR/PORT
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return prune_on_imagenet(load_profile(profile_name), imagenet, levels, device)


__all__ = ["ImageNetRecipe", "prune_on_imagenet", "start_distributed", "submit_pruning"]
