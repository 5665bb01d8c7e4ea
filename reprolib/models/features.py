"""What each backbone family's source head reads: the features a linear probe trains on.

One function per family, named by that family's `FamilySpec.features` in models/registry.py
(the registry imports this module only when a feature is asked for, so it stays torch-free):

- resnet: the trunk's globally pooled output (what `fc` reads);
- vit (torchvision VisionTransformer): the class token after the encoder, whose last module is
  the final LayerNorm: exactly what torchvision feeds `heads.head`;
- efficientnet (timm): the pooled head-conv output, what `classifier` reads
  (models/efficientnet_lite.py);
- convnext (torchvision ConvNeXt): the pooled stage output after the classifier's LayerNorm and
  flatten, what its last Linear (`classifier.2`) reads.
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


def convnext_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision ConvNeXt: stages, global pooling, then every classifier module but the last Linear."""
    x = net.avgpool(net.features(x))
    for module in list(net.classifier)[:-1]:   # LayerNorm2d, Flatten
        x = module(x)
    return x


__all__ = ["convnext_features", "efficientnet_features", "resnet_features", "vit_features"]
