"""OOD detection for a finished transfer run: are tickets worse OOD detectors after LP / VP / SMM?

The Reprogrammer study (reprolib.reprogrammer) asks this of text-image encoders; here the
same lens is turned on the image-classifier study. After training, the run's model (the
selected epoch's prompt + label map, or linear head) scores in-distribution test images
(the target's test set) and two kinds of OOD images:

- `datasets`: the target's OOD partners (`ood_partners`), pooled in that order,
  `Protocol.ood_per_set` seeded test images of each (300), resized to the target's
  served size by reprolib.images.to_network. The partners are fixed by the profile alone,
  the same on every machine: an embedded target's DatasetInfo.ood_partners (digits:
  Fashion-MNIST and glyphs), a paper target's the profile's other targets. A partner that
  is not on disk is fetched where the profile allows downloads, and otherwise fails the
  run with one line naming it (`python -m reprolib data --prepare --profile P` fetches every
  target and partner first); nothing is ever scored against whatever happens to be there.
  Each record stores its partner list (config.ood_partners, hashed).
- `noise`: `ood_per_set` seeded uniform-noise images of the target's size and channels.

The pooled images are never held as float: `PooledImages` gathers them per minibatch from
the partners' own storage (uint8 memory maps for paper sets), resizing there.

Scores (higher = more in-distribution): maximum softmax probability over the K target
logits (`msp`) and negative energy (`energy`, logsumexp). Metrics: AUROC and FPR at 95%
TPR (reprolib.scores.ood.detection, shared with the Reprogrammer study), ID as the positive class,
computed from the saved OOD logits (`ood_logits`) by the metric registry's OOD entries.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from reprolib.data import get_dataset, info
from reprolib.data.split import from_tensors
from reprolib.errors import ReprolibError
from reprolib.images import to_network
from reprolib.scores.ood import noise_images

NOISE_SEED = 12345


def ood_partners(target: str, profile: Any) -> tuple[str, ...]:
    """The sets whose test images are `target`'s OOD data, in pooling order (module docstring)."""
    candidates = info(target).ood_partners if info(target).kind == "embedded" else profile.targets
    return tuple(name for name in candidates if name != target)


class PooledImages:
    """Seeded `per_set`-image subsets of several test splits, concatenated in order, gathered per
    minibatch at (`channels`, `size`); duck-types the ImageSplit API the methods read."""

    def __init__(self, parts: list[Any], channels: int, size: int):
        self.parts, self.channels, self.size = parts, channels, size
        self.offsets = torch.tensor([0] + [len(p) for p in parts]).cumsum(0)
        self.labels = torch.zeros(int(self.offsets[-1]), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def gather(self, indices: Tensor, device: str | torch.device = "cpu") -> Tensor:
        """Float [0, 1] images at `indices` on `device`, each part resized to the pooled size."""
        indices = indices.cpu()
        part_of = torch.searchsorted(self.offsets, indices, right=True) - 1
        out = torch.empty(len(indices), self.channels, self.size, self.size, device=device)
        for k, part in enumerate(self.parts):
            mask = part_of == k
            if bool(mask.any()):
                local = indices[mask] - self.offsets[k]
                out[mask.to(out.device)] = to_network(part.gather(local, device), self.channels, self.size)
        return out

    def fingerprint(self) -> str:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(repr((self.channels, self.size)).encode())
        for part in self.parts:
            digest.update(part.fingerprint().encode())
        return digest.hexdigest()


def ood_images(target: str, profile: Any, size: int, channels: int, per_set: int) -> dict[str, Any]:
    """{'datasets': PooledImages of the partners, 'noise': noise images} at the target's size."""
    return _ood_images(ood_partners(target, profile), str(profile.path("data_root")), bool(profile.download),
                       size, channels, per_set, profile.profile)


@functools.lru_cache(maxsize=4)   # a sweep worker scores many runs of the same target
def _ood_images(partners: tuple[str, ...], data_root: str, download: bool, size: int, channels: int,
                per_set: int, profile_name: str) -> dict[str, Any]:
    parts = []
    for name in partners:
        try:
            split = get_dataset(name, "test", root=data_root, download=download)
        except ReprolibError as err:
            raise ReprolibError(f"OOD partner {name} is not available ({err}); fetch every target and partner "
                                f"first: python -m reprolib data --prepare --profile {profile_name}") from None
        keep = torch.randperm(len(split), generator=torch.Generator().manual_seed(NOISE_SEED))[:per_set]
        parts.append(split.subset(torch.sort(keep).values))
    noise = noise_images(per_set, channels, size, seed=NOISE_SEED)
    out: dict[str, Any] = {"noise": from_tensors(noise, torch.zeros(per_set, dtype=torch.long))}
    if parts:
        out["datasets"] = PooledImages(parts, channels, size)
    return out


def ood_logits(predict_images: Callable[[Any], Tensor], images: dict[str, Any]) -> dict[str, Tensor]:
    """{group: the trained model's logits on that OOD group} ('datasets', 'noise'); `predict_images`
    takes a group's images (split-like). Saved with the run (reprolib.scores.saved)."""
    return {group: predict_images(x) for group, x in images.items()}
