"""torchvision networks (ResNets, ViTs) and their pretrained weights, offline-first.

Which architecture and which weights enum belong to a backbone is the registry's fact
(`reprolib.models.registry`); this module only builds and fetches. Weights are read from
the torch hub checkpoint cache; they are downloaded only when the caller allows it
(`download=True`, i.e. the profile's `download: true`). Offline and not cached is a
one-line ReprolibError naming the file and how to get it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from reprolib.errors import ReprolibError
from reprolib.models.weights import load_weights


def weights_enum(weights: str):
    """"ResNet50_Weights.IMAGENET1K_V2" (or "ViT_B_32_Weights.IMAGENET1K_V1") -> the torchvision enum member."""
    import torchvision.models as tvm  # torchvision is slow to import; only when weights are read

    enum_name, member = weights.split(".")
    return getattr(getattr(tvm, enum_name), member)


def _cache_dirs(root: str | os.PathLike | None) -> list[Path]:
    """Where a checkpoint may already be: `root` (if given), then torch hub's own cache."""
    dirs = [Path(root)] if root is not None else []
    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    return dirs


def torchvision_state_dict(name: str, weights: str, root: str | os.PathLike | None = None,
                           download: bool = False) -> dict[str, torch.Tensor]:
    """The state dict of torchvision weights enum `weights` (for backbone `name`), cached or downloaded."""
    weights = weights_enum(weights)
    filename = os.path.basename(weights.url)
    dirs = _cache_dirs(root)
    for directory in dirs:
        if (directory / filename).is_file():
            return load_weights(directory / filename, "delete it and it is downloaded again (profile download: true)")
    if not download:
        raise ReprolibError(
            f"{name} pretrained weights {filename} are not cached in {', '.join(str(d) for d in dirs)}; "
            f"allow downloads (profile download: true / download=True) or pass weights=None"
        )
    try:
        return torch.hub.load_state_dict_from_url(weights.url, model_dir=str(dirs[0]), map_location="cpu",
                                                  check_hash=True, weights_only=True)
    except Exception as err:  # network errors come in many types; the user needs one line
        raise ReprolibError(f"could not download {name} weights from {weights.url}: {type(err).__name__}: {err}")


def torchvision_network(arch: str, num_classes: int) -> nn.Module:
    """An untrained torchvision network `arch` (e.g. "resnet50", "vit_b_32") with `num_classes` outputs."""
    import torchvision.models as tvm  # as above: only when a network is built

    return getattr(tvm, arch)(weights=None, num_classes=num_classes)
