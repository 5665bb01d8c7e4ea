"""Backbone registry: `get_backbone(name, weights=...)` and `names()`.

- small_resnet: the embedded 1-channel 28 px ResNet (reprolib.models.small_resnet),
  Fashion-MNIST normalisation, 10 source classes. Its "default" weights are the dense
  upstream model made by `python -m reprolib upstream` (imp level_00 under `root`,
  the profile's artifacts directory).
- resnet18 / resnet50: torchvision, ImageNet weights IMAGENET1K_V1 / IMAGENET1K_V2,
  3 x 224 x 224 inputs, ImageNet normalisation, 1000 source classes.

`weights`: "default" (the weights above), None (random init, seeded by the caller's
torch seed), or a path to a state dict file of `.net` (strict load).
"""

from __future__ import annotations

import os
from pathlib import Path

from reprolib.errors import ReprolibError, check_choice

# Fashion-MNIST train-set pixel mean / std (60,000 images, [0, 1] scale).
FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)

_NAMES = ("small_resnet", "resnet18", "resnet50")


def names() -> list[str]:
    return list(_NAMES)


def from_network(name: str, net):
    """Wrap an already-built `net` of architecture `name` (e.g. a loaded ticket) as a Backbone."""
    from reprolib.models.backbone import Backbone

    check_choice("backbone", name, _NAMES)
    if name == "small_resnet":
        return Backbone(net, name, input_size=28, channels=1, mean=FASHION_MNIST_MEAN, std=FASHION_MNIST_STD,
                        num_source_classes=int(net.fc.out_features))
    from reprolib.models.torchvision_resnets import IMAGENET_MEAN, IMAGENET_STD

    return Backbone(net, name, input_size=224, channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                    num_source_classes=int(net.fc.out_features))


def get_backbone(name: str, weights: str | os.PathLike | None = "default",
                 root: str | os.PathLike | None = None, download: bool = False):
    """Build backbone `name` with `weights` ("default", None, or a state-dict path)."""
    import torch

    check_choice("backbone", name, _NAMES)
    if name == "small_resnet":
        from reprolib.models.small_resnet import small_resnet

        backbone = from_network(name, small_resnet())
    else:
        from reprolib.models.torchvision_resnets import torchvision_resnet

        backbone = from_network(name, torchvision_resnet(name))
    if weights is None:
        return backbone.eval()
    if isinstance(weights, str) and weights == "default":
        state = _default_state(name, root, download)
    else:
        path = Path(weights)
        if not path.is_file():
            raise ReprolibError(f"weights file {str(path)!r} for {name} does not exist; "
                                f"valid choices: 'default', None, or an existing state-dict path")
        state = torch.load(path, map_location="cpu", weights_only=True)
    _load_strict(backbone, state, name)
    return backbone.eval()


def _default_state(name: str, root, download: bool) -> dict:
    import torch

    if name == "small_resnet":
        from reprolib.sparsity.masks import ticket_dir

        if root is None:
            raise ReprolibError("small_resnet default weights need root= the profile's artifacts directory")
        path = ticket_dir(root, "imp", 0) / "model.pth"
        if not path.is_file():
            raise ReprolibError(f"no upstream model at {path}; make it with "
                                f"`python -m reprolib upstream --profile embedded`")
        return torch.load(path, map_location="cpu", weights_only=True)
    from reprolib.models.torchvision_resnets import imagenet_state_dict

    return imagenet_state_dict(name, root=root, download=download)


def _load_strict(backbone, state: dict, name: str) -> None:
    if not isinstance(state, dict):
        raise ReprolibError(f"weights for {name} must be a state dict, got {type(state).__name__}")
    try:
        backbone.net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[1:2] or [str(err)]
        raise ReprolibError(f"weights do not fit {name}: {first[0].strip()}")


__all__ = ["get_backbone", "from_network", "names", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD"]
