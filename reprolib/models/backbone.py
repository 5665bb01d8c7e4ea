"""Backbone: a source network plus what a transfer method needs to know about its input.

Every method (LP, VP, SMM, watermark prompts) talks to a Backbone, never to the raw
network: it reads `input_size`, `channels`, `mean`, `std` to build inputs, calls
`normalize(x)` on [0, 1] images, `forward` for source logits (VP label maps) and
`features` for the features the source head reads (LP). `.net` keeps torchvision parameter
names so masks (`layer1.0.conv1.weight` -> 0/1 tensor) apply to it directly.

Features by family: what the source head reads, as the family's entry says
(`models.registry.get_family(family).features`, the functions in models/features.py).
"""

from __future__ import annotations

import torch
from torch import nn

from reprolib.models.registry import get_family


class Backbone(nn.Module):
    """A source network (`net`) with its input convention and output sizes."""

    def __init__(self, net: nn.Module, name: str, input_size: int, channels: int,
                 mean: tuple[float, ...], std: tuple[float, ...], num_source_classes: int,
                 family: str, classifier: str = "fc", prompt_side: int | None = None):
        """Many parameters because every input fact of the registry spec travels with the network."""
        super().__init__()
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f"mean/std need {channels} values, got {len(mean)} and {len(std)}")
        self.net = net
        self.name = name
        self.input_size = input_size
        self.channels = channels
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.num_source_classes = num_source_classes
        self.family = family   # a models.registry family: methods whose recipe differs ask its FamilySpec
        self.classifier = classifier   # module name of the source head (a Linear)
        self.prompt_side = prompt_side   # BackboneSpec.prompt_side: where VP places every target (or None)
        self.feature_dim = int(net.get_submodule(classifier).in_features)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std per channel, for [0, 1] images of shape (N, channels, H, W)."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def forward(self, x_normalized: torch.Tensor) -> torch.Tensor:
        """Source-task logits, shape (N, num_source_classes)."""
        return self.net(x_normalized)

    def features(self, x_normalized: torch.Tensor) -> torch.Tensor:
        """What the source head reads (see the module docstring), shape (N, feature_dim)."""
        return get_family(self.family).features(self.net, x_normalized)

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, input_size={self.input_size}, channels={self.channels}, "
                f"num_source_classes={self.num_source_classes}, feature_dim={self.feature_dim}")
