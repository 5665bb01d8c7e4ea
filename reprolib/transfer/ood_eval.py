"""The OOD sets of a transfer run: which images, how many, at what size (the OOD stage scores them).

Are tickets worse OOD detectors after LP / VP / SMM? The Reprogrammer study
(reprolib.reprogrammer) asks this of text-image encoders; here the same lens is turned on the
image-classifier study. A run's model (the selected epoch's prompt + label map, or linear head)
scores its target's test set and, one by one, its OOD sets (`ood_sets`):

- each OOD partner of the target (`ood_partners`), in that order: `Protocol.ood_per_set`
  seeded test images of the partner (300), resized to the target's served size by
  reprolib.images.to_network. The partners are fixed by the profile alone, the same on every
  machine: an embedded target's DatasetInfo.ood_partners (digits: Fashion-MNIST and glyphs),
  a paper target's the profile's other targets. A partner must be there: one that is not on
  disk is fetched where the profile allows downloads, and otherwise the run (or its OOD stage
  item) fails with one line naming it (`python -m reprolib data --prepare --profile P` fetches
  every target and partner first); nothing is ever scored against whatever happens to be there.
- `noise`: `ood_per_set` seeded uniform-noise images of the target's size and channels.

Each set has a `description` (what makes its images: the partner, split, count, seed, size,
channels and the fingerprint of exactly the images read; for noise its kind, count, seed, size
and channels) whose hash keys the set's logits file beside the run (`<id>.ood-<set>.npz`,
reprolib.scores.ood_files). The sets are not part of the run's id: adding or removing a
partner scores only the new (run, set) pairs, from the run's saved learned state
(reprolib.transfer.ood_stage), and retrains nothing.

The record's OOD metrics keep two groups: `datasets` (the partner sets' logits concatenated in
partner order: the pooled set of earlier versions, so AUROC / FPR95 are the same numbers) and
`noise`. Images are never held as float: `PooledImages` gathers a set per minibatch from the
partner's own storage (uint8 memory maps for paper sets), resizing there.

Scores (higher = more in-distribution): maximum softmax probability over the K target
logits (`msp`) and negative energy (`energy`, logsumexp). Metrics: AUROC and FPR at 95%
TPR (reprolib.scores.ood.detection, shared with the Reprogrammer study), ID as the positive class,
computed from the saved OOD logits by the metric registry's OOD entries.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from reprolib.data import get_dataset, info
from reprolib.data.split import from_tensors
from reprolib.errors import ReprolibError
from reprolib.images import to_network
from reprolib.scores.ood import noise_images

NOISE_SEED = 12345
NOISE = "noise"                # the uniform-noise set, and its metrics group
PARTNERS_GROUP = "datasets"    # the metrics group of the partner sets, pooled in partner order


def ood_partners(target: str, profile: Any) -> tuple[str, ...]:
    """The sets whose test images are `target`'s OOD data, in pooling order (module docstring)."""
    candidates = info(target).ood_partners if info(target).kind == "embedded" else profile.targets
    return tuple(name for name in candidates if name != target)


class PooledImages:
    """Image subsets of one or more test splits, concatenated in order, gathered per minibatch at
    (`channels`, `size`); duck-types the ImageSplit API the methods read (an OOD set is one part)."""

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


@dataclass(frozen=True)
class OodSet:
    """One OOD set of a run: its name (the partner dataset, or "noise"), the record's metrics
    group it pools into, its description (hashed: reprolib.scores.ood_files) and its images
    (split-like: `labels`, `gather(idx, device)`, `fingerprint()`)."""

    name: str
    group: str
    description: dict[str, Any]
    images: Any


def ood_sets(target: str, profile: Any, per_set: int) -> tuple[OodSet, ...]:
    """The OOD sets of `target`'s runs under `profile`: each partner in order, then noise, at the
    target's served size and channels, `per_set` images each (module docstring)."""
    meta = info(target)
    return _ood_sets(ood_partners(target, profile), str(profile.path("data_root")), bool(profile.download),
                     meta.image_size, meta.channels, per_set, profile.profile)


@functools.lru_cache(maxsize=4)   # a sweep worker scores many runs of the same target
def _ood_sets(partners: tuple[str, ...], data_root: str, download: bool, size: int, channels: int,
              per_set: int, profile_name: str) -> tuple[OodSet, ...]:
    sets = []
    for name in partners:
        try:
            split = get_dataset(name, "test", root=data_root, download=download)
        except ReprolibError as err:
            raise ReprolibError(f"OOD partner {name} is not available ({err}); fetch every target and partner "
                                f"first: python -m reprolib data --prepare --profile {profile_name}") from None
        keep = torch.randperm(len(split), generator=torch.Generator().manual_seed(NOISE_SEED))[:per_set]
        part = split.subset(torch.sort(keep).values)
        description = {"set": name, "split": "test", "count": len(part), "seed": NOISE_SEED,
                       "selection": "the first `count` of a seeded permutation, in storage order",
                       "size": size, "channels": channels, "images": part.fingerprint()}
        sets.append(OodSet(name, PARTNERS_GROUP, description, PooledImages([part], channels, size)))
    noise = noise_images(per_set, channels, size, seed=NOISE_SEED)
    description = {"set": NOISE, "kind": "uniform", "count": per_set, "seed": NOISE_SEED, "size": size,
                   "channels": channels}
    sets.append(OodSet(NOISE, NOISE, description, from_tensors(noise, torch.zeros(per_set, dtype=torch.long))))
    return tuple(sets)
