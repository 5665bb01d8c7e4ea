"""Linear probing (docs/methods.md s.3): a new Linear(feature_dim, K) on a frozen backbone.

Inputs go straight to the backbone's channels and input size (`reprolib.images.to_network`)
and are normalised, with no augmentation. Nothing before the head trains and the backbone
stays in eval mode, so every image's features are the same in every epoch: the cached
`LinearProbe` computes them once (`encode`) and trains the head on the stored features.
`cached=False` gathers the images and runs the backbone on every minibatch instead (the
public code's way); with the same seed both give the same head up to float round-off
(tests check this), the cached path only much faster. The one feature pass walks the split
in FEATURE_BATCH minibatches (the split itself is never held as float); the features (N x
feature_dim float32: 0.4 GB for CIFAR-10's 50,000 images on ResNet-50) are what the head
trains on. With a `MethodContext.feature_store` the features are also shared between runs
(reprolib.transfer.feature_cache): computed once per network and image set, bit-identical
to computing them in the run.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from reprolib.batching import minibatches
from reprolib.images import to_network
from reprolib.transfer.feature_cache import feature_key
from reprolib.schedules import multistep
from reprolib.transfer.inputs import StoredInputs, from_split, from_tensor
from reprolib.transfer.method import MethodContext, TransferMethod

FEATURE_BATCH = 256   # inference batch for the one feature pass


def backbone_input(backbone, x: Tensor) -> Tensor:
    """[0, 1] target batch -> normalised backbone input (channels matched, resized)."""
    return backbone.normalize(to_network(x, backbone.channels, backbone.input_size))


@torch.no_grad()
def extract_features(backbone, images: Tensor, device: str = "cpu", batch_size: int = FEATURE_BATCH) -> Tensor:
    """Penultimate features of every image (one no-grad pass; float32, on `images`' device).

    Float32 on every device (no autocast): the features feed evaluation as well as training,
    and the public LP evaluates in float32 (docs/methods.md s.3, s.4).
    """
    chunks = []
    for start in range(0, len(images), batch_size):
        x = backbone_input(backbone, images[start:start + batch_size])
        if str(device).startswith("cuda"):
            x = x.contiguous(memory_format=torch.channels_last)
        chunks.append(backbone.features(x).float())
    if not chunks:
        return torch.empty(0, backbone.feature_dim, device=images.device)
    return torch.cat(chunks)


@torch.no_grad()
def split_features(backbone, split: Any, device: str = "cpu", batch_size: int = FEATURE_BATCH) -> Tensor:
    """`extract_features` of a whole split (anything with `labels` and `gather`), one gathered
    minibatch of `batch_size` images at a time; the features stay on `device`."""
    chunks = [extract_features(backbone, split.gather(idx, device), device, batch_size)
              for idx in minibatches(len(split.labels), batch_size, None)]
    if not chunks:
        return torch.empty(0, backbone.feature_dim, device=device)
    return torch.cat(chunks)


def new_head(feature_dim: int, num_classes: int, seed: int, device: str) -> nn.Linear:
    """Default PyTorch init, drawn from a fixed seed so cached and uncached runs start equal."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(feature_dim, num_classes)
    return head.to(device)


class LinearProbe(TransferMethod):
    """Adam (no weight decay) at the entry's lp_lr (ctx.hparams) on a new head, MultiStepLR per epoch."""

    def __init__(self, ctx: MethodContext, cached: bool = True):
        self.backbone = ctx.backbone.eval().requires_grad_(False)
        self.device, self.cached = ctx.device, cached
        self.feature_store = ctx.feature_store if cached else None
        self.head = new_head(self.backbone.feature_dim, ctx.target.num_classes, ctx.seed, ctx.device)
        optimizer = torch.optim.Adam(self.head.parameters(), lr=ctx.hparams["lp_lr"], weight_decay=0.0)
        self.modules = [self.head]
        self.optimizers = [optimizer]
        self.schedulers = [multistep(optimizer, ctx.protocol.milestone_epochs(ctx.epochs), ctx.protocol.gamma)]

    def encode(self, images: Tensor) -> Tensor:
        """A minibatch: cached, its penultimate features; uncached, the images themselves."""
        return extract_features(self.backbone, images, self.device) if self.cached else images

    def inputs(self, split: Any) -> StoredInputs:
        """Cached: the split's features, computed once (or read from the feature store);
        uncached: the images, gathered per minibatch."""
        if not self.cached:
            return from_split(split, lambda x: x, self.device)
        compute = lambda: split_features(self.backbone, split, self.device, FEATURE_BATCH)  # noqa: E731
        if self.feature_store is None:
            return from_tensor(compute(), split.labels, self.device)
        key = feature_key(self.backbone, split, self.device, FEATURE_BATCH)
        return from_tensor(self.feature_store.features(key, compute, self.device), split.labels, self.device)

    def forward(self, x: Tensor) -> Tensor:
        if not self.cached:
            with torch.no_grad():
                x = self.backbone.features(backbone_input(self.backbone, x)).float()
        return self.head(x)

    def learned_state(self) -> dict[str, Tensor]:
        """The learned head, for the run's .npz file."""
        return {"head.weight": self.head.weight.detach().cpu(), "head.bias": self.head.bias.detach().cpu()}
