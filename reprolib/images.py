"""Images between datasets and networks: channel matching and resizing, one way for all.

Every study (transfer runs, OOD scoring, the Reprogrammer study) turns a [0, 1] image batch
(N, C, H, W), C in {1, 3}, into a network's input size and channels with these functions, so
an image reaches every network the same way:
- Channels: grey repeated to 3 channels for RGB networks; RGB to luminance with the
  ITU-R BT.601 weights (0.299, 0.587, 0.114) for grey networks, the weights PIL's "L"
  mode and torchvision's rgb_to_grayscale use.
- Size: `F.interpolate(mode="bilinear", align_corners=False, antialias=True)`. Antialiasing
  matters only when shrinking; it is on because the public code resizes PIL images with
  torchvision's Resize, which always antialiases. A batch that already has the size is
  returned unchanged (no interpolation round-off).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from reprolib.errors import ReprolibError, check_type

LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def check_batch(x: Tensor) -> Tensor:
    """Refuse anything that is not an (N, 1|3, H, W) floating tensor."""
    check_type("image batch", x, Tensor)
    if x.dim() != 4 or x.shape[1] not in (1, 3) or not x.is_floating_point():
        raise ReprolibError(
            f"image batch must be a float tensor of shape (N, 1 or 3, H, W), got {x.dtype} {tuple(x.shape)}"
        )
    return x


def match_channels(x: Tensor, channels: int) -> Tensor:
    """Repeat grey to RGB, or convert RGB to luminance, so x has `channels` channels."""
    check_batch(x)
    have = x.shape[1]
    if have == channels:
        return x
    if have == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    # have == 3, channels == 1: luminance (BT.601), see the module docstring.
    weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def resize(x: Tensor, size: int) -> Tensor:
    """Bilinear (antialiased) resize to size x size; a no-op when x already has that size."""
    if x.shape[-2] == size and x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def to_network(x: Tensor, channels: int, size: int) -> Tensor:
    """A [0, 1] batch with the network's channels and side (match_channels, then resize)."""
    return resize(match_channels(x, channels), size)


def to_network_in_chunks(images: Tensor, channels: int, size: int, batch: int = 1024) -> Tensor:
    """`to_network` over a large tensor in chunks, as one contiguous copy (bounded peak memory)."""
    out = [to_network(images[i:i + batch], channels, size).contiguous() for i in range(0, len(images), batch)]
    return torch.cat(out) if out else images.new_empty(0, channels, size, size)
