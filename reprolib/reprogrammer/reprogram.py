"""The Reprogrammer (docs/methods.md s.6): image-side frame perturbation, text-side trainable
embeddings, and the Residual Reprogrammer's feature mixing.

Image side: a [0, 1] image is brought to the encoder's input size and channels by
reprolib.images.to_network, the same path the transfer study uses (bilinear, antialiased;
grey repeated to 3 channels for a colour encoder, RGB to BT.601 luminance for a grey one), then
x' = clamp(x + tanh(W) * M, 0, 1) with M = 1 on a `frame`-pixel border and 0 inside, W drawn
from N(0, 1); then the encoder normalisation and the frozen image encoder.

Text side: a private copy of the encoder in which only the token-embedding table and the
positional embedding require gradients; captions "a photo of a {class}".

Residual Reprogrammer (inference only): f = (1 - a) f_reprogrammed + a f_zero_shot for both image
and text features, each unit-normalised before mixing and NOT re-normalised after, as in the
paper. The zero-shot image feature is the same frozen image tower without the perturbation; the
zero-shot text features are those of the untouched encoder, computed once at construction.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from reprolib.errors import ReprolibError
from reprolib.images import to_network
from reprolib.reprogrammer.encoders import TextImageEncoder


def frame_mask(size: int, frame: int) -> torch.Tensor:
    """(1, 1, size, size) float mask: 1 on the `frame`-pixel border, 0 on the central square."""
    if not 0 < frame < size / 2:
        raise ReprolibError(f"frame width {frame} px does not fit a {size} px input; valid: 1..{(size - 1) // 2}")
    mask = torch.ones(1, 1, size, size)
    mask[..., frame: size - frame, frame: size - frame] = 0.0
    return mask


def residual_mix(reprogrammed: torch.Tensor, zero_shot: torch.Tensor, alpha: float) -> torch.Tensor:
    """(1 - alpha) * reprogrammed + alpha * zero_shot, no re-normalisation."""
    if not 0.0 <= alpha <= 1.0:
        raise ReprolibError(f"residual alpha must lie in [0, 1], got {alpha}")
    return (1.0 - alpha) * reprogrammed + alpha * zero_shot


class ImageReprogram(nn.Module):
    """x -> clamp(resize(x) + tanh(W) * M, 0, 1) at the encoder's size (before normalisation)."""

    def __init__(self, size: int, channels: int, frame: int, generator: torch.Generator | None = None):
        super().__init__()
        self.size, self.channels, self.frame = size, channels, frame
        self.register_buffer("mask", frame_mask(size, frame))
        self.W = nn.Parameter(torch.randn(1, channels, size, size, generator=generator))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = to_network(images, self.channels, self.size)
        return (x + torch.tanh(self.W) * self.mask).clamp(0.0, 1.0)


class Reprogrammer(nn.Module):
    """A reprogrammed text-image encoder: trainable W, token and positional embeddings only."""

    def __init__(self, encoder: TextImageEncoder, class_names: list[str], frame: int,
                 template: str = "a photo of a {}", seed: int = 1):
        super().__init__()
        self.class_names = list(class_names)
        self.encoder = copy.deepcopy(encoder).eval()   # private copy: the caller's encoder stays zero-shot
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.encoder.token_embedding.weight.requires_grad_(True)
        self.encoder.positional_embedding.requires_grad_(True)
        generator = torch.Generator().manual_seed(seed)
        self.image_program = ImageReprogram(encoder.image_size, encoder.channels, frame, generator)
        device = next(encoder.parameters()).device
        self.image_program.to(device)
        self.captions = [template.format(name) for name in self.class_names]
        self.register_buffer("caption_ids", self.encoder.tokenize(self.captions).to(device))
        with torch.no_grad():
            zero_shot_text = F.normalize(encoder.eval().encode_text(self.caption_ids), dim=-1)
        self.register_buffer("zero_shot_text", zero_shot_text)

    def train(self, mode: bool = True) -> "Reprogrammer":
        super().train(mode)
        self.encoder.eval()          # frozen towers: BN uses running statistics, no dropout
        return self

    def trainable_parameters(self) -> dict[str, list[nn.Parameter]]:
        return {"image": [self.image_program.W],
                "text": [self.encoder.token_embedding.weight, self.encoder.positional_embedding]}

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-normalised features of the reprogrammed images."""
        x = self.encoder.normalize(self.image_program(images))
        return F.normalize(self.encoder.encode_image(x), dim=-1)

    def zero_shot_image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-normalised features of the plain (resized, unperturbed) images."""
        return self.encoder.image_features(images)

    def text_features(self, token_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Unit-normalised features of the captions under the trained embeddings (class captions by default)."""
        ids = self.caption_ids if token_ids is None else token_ids
        return F.normalize(self.encoder.encode_text(ids), dim=-1)

    @torch.no_grad()
    def features(self, images: torch.Tensor, alpha: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """(image features (N, D), class text features (K, D)) mixed with the zero-shot ones by alpha."""
        image = residual_mix(self.image_features(images), self.zero_shot_image_features(images), alpha)
        text = residual_mix(self.text_features(), self.zero_shot_text, alpha)
        return image, text
