"""Watermark prompts, the SMM paper's Narrow / Medium / Full baselines (docs/methods.md s.5).

    backbone input = normalize(resize(x, out)) + delta * M

delta (channels x out x out) starts at zero and is added in NORMALISED space (no
sigmoid, no clamp). M is a binary frame `width_at_224` pixels wide at out = 224, or all ones
when the width is None. Each prompt kind's entry (prompts/kinds.py) fixes its width: 28
(narrow), 56 (medium), None (full). For other sizes the width scales with the image:
max(1, round(width * out / 224)), e.g. 4 and 7 at 28 px (Python's round: 3.5 -> 4).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from reprolib.errors import ReprolibError
from reprolib.images import to_network
from reprolib.prompts.common import (
    Normalization,
    Normalizer,
    check_channels,
    check_size,
)

def frame_width(width_at_224: int | None, output_size: int) -> int | None:
    """Width of the learnable frame in pixels at this size; None (the whole image) stays None."""
    if width_at_224 is not None and (isinstance(width_at_224, bool) or not isinstance(width_at_224, int)
                                     or width_at_224 < 1):
        raise ReprolibError(f"watermark frame width must be a positive number of pixels at 224 or None "
                            f"(the whole image), got {width_at_224!r}")
    return None if width_at_224 is None else max(1, round(width_at_224 * output_size / 224))


def frame_mask(output_size: int, width: int | None) -> Tensor:
    """(out, out) float mask: 1 on a border `width` pixels wide, all ones when width is None."""
    mask = torch.ones(output_size, output_size)
    if width is not None and 2 * width < output_size:
        mask[width : output_size - width, width : output_size - width] = 0.0
    return mask


class WatermarkPrompt(nn.Module):
    """A zero-initialised additive delta on a fixed frame `width_at_224` wide at 224 px (None: the
    whole image)."""

    def __init__(
        self,
        width_at_224: int | None,
        output_size: int = 224,
        channels: int = 3,
        normalize: Normalization = None,
    ):
        super().__init__()
        self.output_size = check_size("prompt output_size", output_size)
        self.channels = check_channels(channels)
        self.width_at_224 = width_at_224
        self.width = frame_width(width_at_224, output_size)
        self.delta = nn.Parameter(torch.zeros(channels, output_size, output_size))
        self.register_buffer("mask", frame_mask(output_size, self.width).view(1, 1, output_size, output_size), persistent=False)
        self.normalizer = Normalizer(normalize, channels)

    @property
    def frame_mask(self) -> Tensor:
        """(out, out) float tensor: 1 where delta acts."""
        return self.mask[0, 0]

    def unprompted(self, x: Tensor) -> Tensor:
        """r(x) = normalize(resize(x)): the input with delta removed."""
        return self.normalizer(to_network(x, self.channels, self.output_size))

    def prompt_image(self) -> Tensor:
        """delta * M (normalised units, not clipped), detached, for display."""
        return (self.delta * self.mask[0]).detach()

    def forward(self, x: Tensor) -> Tensor:
        return self.unprompted(x) + self.delta * self.mask

    def extra_repr(self) -> str:
        return (f"width_at_224={self.width_at_224}, output_size={self.output_size}, channels={self.channels}, "
                f"width={self.width}")
