"""Shared pieces of the visual prompts: channel matching, resizing, normalisation, augmentation.

Every prompt takes a target batch in [0, 1] of shape (N, C_t, H, W), C_t in {1, 3}, and
returns the NORMALISED input of the backbone, (N, channels, out, out).

Channel matching and resizing live in `reprolib.images` (one way for every study).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from reprolib.devices import to_device
from reprolib.errors import ReprolibError, check_type
from reprolib.images import check_batch, resize

# (mean, std), each a sequence of `channels` floats (or one float broadcast), or None.
Normalization = tuple[Sequence[float], Sequence[float]] | None


def check_channels(channels: int) -> int:
    check_type("channels", channels, int)
    if channels not in (1, 3):
        raise ReprolibError(f"channels must be 1 or 3, got {channels!r}")
    return channels


def check_size(name: str, size: int) -> int:
    check_type(name, size, int)
    if size < 1:
        raise ReprolibError(f"{name} must be a positive int, got {size!r}")
    return size


class Normalizer(nn.Module):
    """(x - mean) / std per channel; the identity when `normalize` is None.

    mean/std are non-persistent buffers: they follow `.to(device)` but stay out of the
    state dict, which then holds only what a prompt learns.
    """

    def __init__(self, normalize: Normalization, channels: int):
        super().__init__()
        self.enabled = normalize is not None
        mean, std = (0.0,), (1.0,)
        if normalize is not None:
            if not isinstance(normalize, (tuple, list)) or len(normalize) != 2:
                raise ReprolibError(f"normalize must be None or a (mean, std) pair, got {normalize!r}")
            mean, std = normalize
        mean_t = _per_channel("normalize mean", mean, channels)
        std_t = _per_channel("normalize std", std, channels)
        if bool((std_t <= 0).any()):
            raise ReprolibError(f"normalize std must be positive, got {std_t.flatten().tolist()}")
        self.register_buffer("mean", mean_t, persistent=False)
        self.register_buffer("std", std_t, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return x
        return (x - self.mean) / self.std


def _per_channel(name: str, values: Sequence[float] | Tensor | float, channels: int) -> Tensor:
    t = torch.as_tensor(values, dtype=torch.float32).flatten()
    if t.numel() == 1:
        t = t.repeat(channels)
    if t.numel() != channels:
        raise ReprolibError(f"{name} needs 1 or {channels} values, got {t.tolist()}")
    return t.view(1, channels, 1, 1)


def augment_pad(size: int) -> int:
    """SMM's resize margin: +32 px at 224 and above, scaled below that (28 px -> +4).

    The crop then jitters the same fraction of the image at every size.
    """
    return 32 if size >= 224 else max(1, round(32 * size / 224))


def augment(
    x: Tensor,
    size: int,
    generator: torch.Generator,
    pad: int | None = None,
    flip: bool = True,
) -> Tensor:
    """SMM's train augmentation on a [0, 1] batch: resize to size+pad, random crop size, flip.

    Each image gets its own crop offset and (when `flip`) a horizontal flip with
    probability 1/2, drawn from `generator` (a CPU torch.Generator), so a seed fixes the
    result. `pad` defaults to `augment_pad(size)`.
    Turn `flip` off for letters and digits, which are not mirror-invariant.
    """
    check_batch(x)
    check_size("augment size", size)
    if pad is None:
        pad = augment_pad(size)
    check_type("augment pad", pad, int)
    if pad < 0:
        raise ReprolibError(f"augment pad must be >= 0, got {pad}")
    big = resize(x, size + pad)
    n = x.shape[0]
    if n == 0:
        return big[..., :size, :size]
    offsets = torch.randint(0, pad + 1, (n, 2), generator=generator).tolist()
    crops = torch.stack([big[i, :, top : top + size, left : left + size] for i, (top, left) in enumerate(offsets)])
    if flip:
        flips = to_device(torch.rand(n, generator=generator) < 0.5, x.device).view(n, 1, 1, 1)
        crops = torch.where(flips, crops.flip(-1), crops)
    return crops
