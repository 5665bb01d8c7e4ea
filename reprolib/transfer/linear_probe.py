"""Linear probing (methods.md s.3): a new Linear(feature_dim, K) on a frozen backbone.

Inputs are resized straight to the backbone's input size (grey repeated to 3 channels for
ImageNet backbones, RGB to luminance for the grey embedded backbone) and normalised, with
no augmentation. Nothing before the head trains and the backbone stays in eval mode, so
every image's features are the same in every epoch: `build_lp(cached=True)` computes them
once and trains the head on the stored features. `cached=False` runs the backbone on every
minibatch instead (the public code's way); with the same seed both give the same head up
to float round-off (tests check this), the cached path only much faster.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from reprolib.prompts import match_channels, resize
from reprolib.protocols import Protocol
from reprolib.transfer.train import Trainable, autocast, multistep

FEATURE_BATCH = 256   # inference batch for the one feature pass


def lp_input(backbone, x: Tensor) -> Tensor:
    """[0, 1] target batch -> normalised backbone input (channels matched, resized)."""
    return backbone.normalize(resize(match_channels(x, backbone.channels), backbone.input_size))


@torch.no_grad()
def extract_features(backbone, images: Tensor, device: str = "cpu", batch_size: int = FEATURE_BATCH) -> Tensor:
    """Penultimate features of every image (one no-grad pass; float32, on `images`' device)."""
    chunks = []
    for start in range(0, len(images), batch_size):
        x = lp_input(backbone, images[start:start + batch_size])
        if str(device).startswith("cuda"):
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device):
            chunks.append(backbone.features(x).float())
    if not chunks:
        return torch.empty(0, backbone.feature_dim, device=images.device)
    return torch.cat(chunks)


def new_head(feature_dim: int, num_classes: int, seed: int, device: str) -> nn.Linear:
    """Default PyTorch init, drawn from a fixed seed so cached and uncached runs start equal."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(feature_dim, num_classes)
    return head.to(device)


def build_lp(backbone, protocol: Protocol, epochs: int, num_classes: int, seed: int,
             train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor],
             val: tuple[Tensor, Tensor] | None = None, device: str = "cpu",
             cached: bool = True) -> Trainable:
    """The LP Trainable: Adam (no weight decay) at protocol.lp_lr, MultiStepLR per epoch."""
    backbone.eval().requires_grad_(False)
    head = new_head(backbone.feature_dim, num_classes, seed, device)
    optimizer = torch.optim.Adam(head.parameters(), lr=protocol.lp_lr, weight_decay=0.0)
    scheduler = multistep(optimizer, protocol.milestone_epochs(epochs), protocol.gamma)

    if cached:
        def encode(x: Tensor) -> Tensor:
            return extract_features(backbone, x, device)
        forward = head
    else:
        def encode(x: Tensor) -> Tensor:
            return x

        def forward(x: Tensor) -> Tensor:
            with torch.no_grad():
                features = backbone.features(lp_input(backbone, x)).float()
            return head(features)

    trainable = Trainable(
        forward=forward, modules=[head], optimizers=[optimizer], schedulers=[scheduler],
        train_inputs=encode(train[0]), train_labels=train[1],
        test_inputs=encode(test[0]), test_labels=test[1],
    )
    if val is not None:
        trainable.val_inputs, trainable.val_labels = encode(val[0]), val[1]
    trainable.extra["head"] = head
    trainable.extra["encode"] = encode   # raw [0, 1] images -> stored inputs (OOD scoring)
    return trainable


def lp_state(trainable: Trainable) -> dict[str, Tensor]:
    """The learned head, for the run's .npz file."""
    head: nn.Linear = trainable.extra["head"]
    return {"head.weight": head.weight.detach().cpu(), "head.bias": head.bias.detach().cpu()}
