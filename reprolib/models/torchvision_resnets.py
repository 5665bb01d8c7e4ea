"""torchvision ResNet-18 / ResNet-50 with ImageNet weights, offline-first.

Weights are read from the torch hub checkpoint cache; they are downloaded only when the
caller allows it (`download=True`, i.e. the profile's `download: true`). Offline and not
cached is a one-line ReprolibError naming the file and how to get it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from reprolib.errors import ReprolibError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# name -> (torchvision builder, weights enum member used by "default")
_WEIGHTS = {"resnet18": "ResNet18_Weights.IMAGENET1K_V1", "resnet50": "ResNet50_Weights.IMAGENET1K_V2"}


def _weights_enum(name: str):
    import torchvision.models as tvm

    enum_name, member = _WEIGHTS[name].split(".")
    return getattr(getattr(tvm, enum_name), member)


def _cache_dirs(root: str | os.PathLike | None) -> list[Path]:
    """Where a checkpoint may already be: `root` (if given), then torch hub's own cache."""
    dirs = [Path(root)] if root is not None else []
    dirs.append(Path(torch.hub.get_dir()) / "checkpoints")
    return dirs


def imagenet_state_dict(name: str, root: str | os.PathLike | None = None,
                        download: bool = False) -> dict[str, torch.Tensor]:
    """The ImageNet state dict of torchvision `name`, from cache or (if allowed) the web."""
    weights = _weights_enum(name)
    filename = os.path.basename(weights.url)
    dirs = _cache_dirs(root)
    for directory in dirs:
        if (directory / filename).is_file():
            return torch.load(directory / filename, map_location="cpu", weights_only=True)
    if not download:
        raise ReprolibError(
            f"{name} ImageNet weights {filename} are not cached in {', '.join(str(d) for d in dirs)}; "
            f"allow downloads (profile download: true / download=True) or pass weights=None"
        )
    try:
        return torch.hub.load_state_dict_from_url(weights.url, model_dir=str(dirs[0]), map_location="cpu",
                                                  check_hash=True, weights_only=True)
    except Exception as err:  # network errors come in many types; the user needs one line
        raise ReprolibError(f"could not download {name} weights from {weights.url}: {type(err).__name__}: {err}")


def torchvision_resnet(name: str) -> nn.Module:
    """An untrained torchvision ResNet (1000 classes) of the given registry name."""
    import torchvision.models as tvm

    return getattr(tvm, name)(weights=None)
