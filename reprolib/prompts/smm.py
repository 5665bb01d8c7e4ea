"""Sample-specific multi-channel masks (SMM; docs/methods.md s.5).

    r(x) = normalize(resize(x, image_size))            (bilinear, see reprolib.images)
    backbone input = r(x) + delta * upsample_p(G(r(x)))

G (`.mask_generator`) is a small CNN: 3x3 convs (stride 1, pad 1) channels -> 8 -> 16 ->
32 -> 64, each followed by BatchNorm and ReLU, then a final 3x3 conv 64 -> channels with no
BN and no activation (a real-valued mask). The 6-layer variant (ViT) adds a 64 -> 128
block before the last conv (128 -> channels). A 2x2 max-pool follows each of the first
log2(patch_size) blocks, so G's output is image_size / patch_size on a side, and
upsample_p copies each mask value over a p x p block (nearest neighbour). delta
(channels x H x W) starts at zero: at init the output equals r(x). No sigmoid, no clamp.

With channels = 3: 26,499 parameters (5 layers) and 102,339 (6 layers), as in the paper.
With channels = 1 (the embedded grey backbone) the first and last convs shrink, so the
counts are smaller.

Training uses two optimisers (delta lr 0.01; generator lr 0.01 with decay for ResNets,
0.001 without for ViT): build them from `.delta_parameters()` and
`.generator_parameters()`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from reprolib.errors import ReprolibError, check_choice, check_type
from reprolib.images import to_network
from reprolib.models.registry import get_family
from reprolib.prompts.common import (
    Normalization,
    Normalizer,
    check_channels,
    check_size,
)

SMM_LAYERS = (5, 6)
_WIDTHS = {5: (8, 16, 32, 64), 6: (8, 16, 32, 64, 128)}


def layers_for_family(family: str) -> int:
    """SMM generator depth for a backbone family: its `FamilySpec.smm_layers` (models/registry.py:
    the SMM paper's 5-layer CNN for ResNets, the 6-layer one, 102,339 parameters at 3 channels, for ViTs)."""
    return get_family(family).smm_layers


def valid_patch_sizes(image_size: int, layers: int) -> list[int]:
    """Powers of two that divide image_size and need no more pools than there are blocks."""
    blocks = len(_WIDTHS[layers])
    return [2**k for k in range(blocks, -1, -1) if image_size % (2**k) == 0]


def check_patch_size(patch_size: int, image_size: int, layers: int) -> int:
    check_type("SMM patch_size", patch_size, int)
    valid = valid_patch_sizes(image_size, layers)
    if patch_size not in valid:
        choices = ", ".join(str(p) for p in valid)
        raise ReprolibError(
            f"SMM patch_size {patch_size} must be a power of two dividing image_size {image_size} "
            f"(at most 2^{len(_WIDTHS[layers])} for {layers} layers); valid choices: {choices}"
        )
    return patch_size


def mask_generator(channels: int, layers: int, patch_size: int) -> nn.Sequential:
    """The SMM mask CNN (see the module docstring)."""
    pools = patch_size.bit_length() - 1  # log2 of a power of two
    modules: list[nn.Module] = []
    in_ch = channels
    for i, width in enumerate(_WIDTHS[layers]):
        modules += [nn.Conv2d(in_ch, width, 3, stride=1, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        if i < pools:
            modules.append(nn.MaxPool2d(2))
        in_ch = width
    modules.append(nn.Conv2d(in_ch, channels, 3, stride=1, padding=1))
    return nn.Sequential(*modules)


def upsample_patches(mask: Tensor, patch_size: int) -> Tensor:
    """Patch-wise interpolation: each value of (N, C, h, w) copied over a p x p block."""
    if patch_size == 1:
        return mask
    return mask.repeat_interleave(patch_size, dim=-2).repeat_interleave(patch_size, dim=-1)


class SMMPrompt(nn.Module):
    """r(x) + delta * mask(r(x)); parameters: delta and the mask generator."""

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 8,
        layers: int = 5,
        channels: int = 3,
        normalize: Normalization = None,
    ):
        super().__init__()
        self.image_size = check_size("SMM image_size", image_size)
        self.layers = check_choice("SMM layers", layers, SMM_LAYERS)
        self.patch_size = check_patch_size(patch_size, image_size, layers)
        self.channels = check_channels(channels)
        self.normalizer = Normalizer(normalize, channels)
        self.mask_generator = mask_generator(channels, layers, patch_size)
        self.delta = nn.Parameter(torch.zeros(channels, image_size, image_size))

    def delta_parameters(self) -> list[nn.Parameter]:
        return [self.delta]

    def generator_parameters(self) -> list[nn.Parameter]:
        return list(self.mask_generator.parameters())

    def unprompted(self, x: Tensor) -> Tensor:
        """r(x): resized and normalised, no mask."""
        return self.normalizer(to_network(x, self.channels, self.image_size))

    def mask(self, rx: Tensor) -> Tensor:
        """The full-resolution sample-specific mask for r(x), (N, channels, H, W)."""
        return upsample_patches(self.mask_generator(rx), self.patch_size)

    def prompt_image(self, x: Tensor) -> Tensor:
        """delta * mask(r(x)) for a batch (normalised units), detached, for display."""
        with torch.no_grad():
            return self.delta * self.mask(self.unprompted(x))

    def forward(self, x: Tensor) -> Tensor:
        rx = self.unprompted(x)
        return rx + self.delta * self.mask(rx)

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}, patch_size={self.patch_size}, layers={self.layers}, channels={self.channels}"
