"""Build a `Backbone` from the registry: `get_backbone(name, weights=...)`, `from_network`.

`weights`: "default" (the spec's pretrained weights; only for backbones whose weights
come from torchvision), None (random init, seeded by the caller's torch seed), or a path
to a state dict file of `.net` (strict load). A backbone trained here ("upstream"
weights, e.g. the embedded profiles' model) has no default: its weights are a file the
caller names, usually through `reprolib.sparsity.get_network(profile)`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from reprolib.errors import ReprolibError
from reprolib.models.weights import load_weights
from reprolib.models import torchvision_resnets
from reprolib.models.backbone import Backbone
from reprolib.models.registry import get_spec


def from_network(name: str, net: nn.Module) -> Backbone:
    """Wrap an already-built `net` of backbone `name` (e.g. a loaded ticket) as a Backbone.

    The number of source classes is read from the spec's classifier (a ticket keeps its own head).
    """
    spec = get_spec(name)
    head = net.get_submodule(spec.classifier)
    return Backbone(net, name, input_size=spec.input_size, channels=spec.channels, mean=spec.mean,
                    std=spec.std, num_source_classes=int(head.out_features), family=spec.family,
                    classifier=spec.classifier, prompt_side=spec.prompt_side)


def get_backbone(name: str, weights: str | os.PathLike | None = "default",
                 root: str | os.PathLike | None = None, download: bool = False) -> Backbone:
    """Build backbone `name` with `weights` ("default", None, or a state-dict path), in eval mode.

    `root` and `download` only matter for "default" torchvision weights: a cache directory
    searched before torch hub's own, and whether a missing file may be downloaded.
    """
    spec = get_spec(name)
    backbone = from_network(name, spec.build(spec.num_source_classes))
    if weights is None:
        return backbone.eval()
    if isinstance(weights, str) and weights == "default":
        if spec.trained_here:
            raise ReprolibError(f"{name} has no default weights: they are trained here; make them with "
                                f"`python -m reprolib upstream --profile embedded` and load them with "
                                f"reprolib.sparsity.get_network(profile), or pass weights=<model.pth>")
        state = pretrained_state(name, root=root, download=download)
    else:
        path = Path(weights)
        if not path.is_file():
            raise ReprolibError(f"weights file {str(path)!r} for {name} does not exist; "
                                f"valid choices: 'default', None, or an existing state-dict path")
        state = load_weights(path, "valid: a state dict of tensors (torch.save(model.state_dict()))")
    _load_strict(backbone, state, name)
    return backbone.eval()


def pretrained_state(name: str, root: str | os.PathLike | None = None, download: bool = False) -> dict:
    """The state dict of backbone `name`'s pretrained ("default") weights: its `pretrained` loader's,
    or its torchvision weights enum's (cached under `root` or torch hub, downloaded if allowed)."""
    spec = get_spec(name)
    if spec.pretrained is not None:
        return spec.pretrained()
    return torchvision_resnets.torchvision_state_dict(name, spec.weights, root=root, download=download)


def _load_strict(backbone: Backbone, state: dict, name: str) -> None:
    if not isinstance(state, dict):
        raise ReprolibError(f"weights for {name} must be a state dict, got {type(state).__name__}")
    try:
        backbone.net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[1:2] or [str(err)]
        raise ReprolibError(f"weights do not fit {name}: {first[0].strip()}")
