"""Backbone: a source network plus what a transfer method needs to know about its input.

Every method (LP, VP, SMM, watermark prompts) talks to a Backbone, never to the raw
network: it reads `input_size`, `channels`, `mean`, `std` to build inputs, calls
`normalize(x)` on [0, 1] images, `forward` for source logits (VP label maps) and
`features` for the features the source head reads (LP). `.net` keeps torchvision parameter
names so masks (`layer1.0.conv1.weight` -> 0/1 tensor) apply to it directly.

Features by family: a ResNet's are the pooled output of its trunk (what `fc` reads); a
ViT's (torchvision VisionTransformer) are the class token after the encoder, whose last
module is the final LayerNorm: exactly what torchvision feeds `heads.head`; an EfficientNet's
(timm) are its pooled head-conv output, what `classifier` reads.
"""

from __future__ import annotations

import torch
from torch import nn

from reprolib.models.efficientnet_lite import efficientnet_features

# The ResNet trunk in torchvision's order; stages a network lacks are skipped.
_TRUNK = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool")


def resnet_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The trunk's globally pooled output, (N, fc.in_features)."""
    for name in _TRUNK:
        module = getattr(net, name, None)
        if module is not None:
            x = module(x)
    return torch.flatten(x, 1)


def vit_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision VisionTransformer: the class token after the encoder (its final LayerNorm included)."""
    tokens = net._process_input(x)                       # patches -> (N, S, D) via conv_proj
    class_token = net.class_token.expand(tokens.shape[0], -1, -1)
    return net.encoder(torch.cat([class_token, tokens], dim=1))[:, 0]


_FEATURES = {"resnet": resnet_features, "vit": vit_features, "efficientnet": efficientnet_features}


class Backbone(nn.Module):
    """A ResNet or ViT network (`net`) with its input convention and output sizes."""

    def __init__(self, net: nn.Module, name: str, input_size: int, channels: int,
                 mean: tuple[float, ...], std: tuple[float, ...], num_source_classes: int,
                 family: str = "resnet", classifier: str = "fc", prompt_side: int | None = None):
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
        self.family = family   # "resnet" | "vit": methods whose recipe differs by family read it
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
        return _FEATURES[self.family](self.net, x_normalized)

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, input_size={self.input_size}, channels={self.channels}, "
                f"num_source_classes={self.num_source_classes}, feature_dim={self.feature_dim}")
