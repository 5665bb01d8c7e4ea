"""Padding visual prompt (ILM-VP's "expansive" prompt; docs/methods.md s.1).

The target image, resized to `input_size` (s), sits zero-padded in the centre of the
backbone's `output_size` (out) input; a learnable frame surrounds it:

    backbone input = normalize(pad(x) + sigmoid(theta) * M)

M is 1 on the frame and 0 over the image, theta (channels x out x out) starts at zero, so
the frame is grey (0.5) at init. Normalisation comes last and nothing is clamped.
Left/top pad = floor((out - s + 1) / 2); the right/bottom pad takes the rest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reprolib.errors import ReprolibError
from reprolib.images import to_network
from reprolib.prompts.common import (
    Normalization,
    Normalizer,
    check_channels,
    check_size,
)


def pad_offsets(input_size: int, output_size: int) -> tuple[int, int]:
    """(before, after) padding that centres an s-pixel image in an out-pixel square."""
    before = (output_size - input_size + 1) // 2
    return before, output_size - input_size - before


class PaddingPrompt(nn.Module):
    """Learnable frame around a centred, zero-padded image; theta is the only parameter."""

    def __init__(
        self,
        input_size: int,
        output_size: int = 224,
        channels: int = 3,
        normalize: Normalization = None,
    ):
        super().__init__()
        check_size("prompt input_size", input_size)
        check_size("prompt output_size", output_size)
        if input_size >= output_size:
            raise ReprolibError(
                f"padding prompt input_size {input_size} must be smaller than output_size {output_size} "
                f"(the frame needs room); valid choices: 1..{output_size - 1}"
            )
        self.input_size = input_size
        self.output_size = output_size
        self.channels = check_channels(channels)
        self.before, self.after = pad_offsets(input_size, output_size)
        self.theta = nn.Parameter(torch.zeros(channels, output_size, output_size))
        mask = torch.ones(1, 1, output_size, output_size)
        inner = slice(self.before, self.before + input_size)
        mask[..., inner, inner] = 0.0
        self.register_buffer("mask", mask, persistent=False)
        self.normalizer = Normalizer(normalize, channels)

    @property
    def frame_mask(self) -> Tensor:
        """(out, out) float tensor: 1 on the learnable frame, 0 over the image."""
        return self.mask[0, 0]

    def pad(self, x: Tensor) -> Tensor:
        """The [0, 1] image resized to input_size and zero-padded to output_size (unnormalised)."""
        x = to_network(x, self.channels, self.input_size)
        b, a = self.before, self.after
        return F.pad(x, (b, a, b, a))

    def prompt_image(self) -> Tensor:
        """sigmoid(theta) * M as a detached (channels, out, out) image in [0, 1], for display."""
        return (torch.sigmoid(self.theta) * self.mask[0]).detach()

    def unprompted(self, x: Tensor) -> Tensor:
        """normalize(pad(x)): the input with a ZERO frame (the paper's FLM definition)."""
        return self.normalizer(self.pad(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.normalizer(self.pad(x) + torch.sigmoid(self.theta) * self.mask)

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, output_size={self.output_size}, channels={self.channels}"
