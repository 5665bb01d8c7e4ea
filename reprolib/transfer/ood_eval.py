"""OOD detection for a finished transfer run: are tickets worse OOD detectors after LP / VP / SMM?

The Reprogrammer study (reprolib.reprogrammer) asks this of text-image encoders; here the
same lens is turned on the image-classifier study. After training, the run's model (the
selected epoch's prompt + label map, or linear head) scores in-distribution test images
(the target's test set) and two kinds of OOD images:

- `datasets`: the target's OOD partners (DatasetInfo.ood_partners), pooled (for digits:
  Fashion-MNIST and glyphs test images; for glyphs: Fashion-MNIST and digits), resized by
  reprolib.images.to_network, `Protocol.ood_per_set` images each (300). In the
  paper profile: the test sets of the profile's other targets that are already on disk
  (nothing is downloaded for this).
- `noise`: `ood_per_set` seeded uniform-noise images of the target's size and channels.

Scores (higher = more in-distribution): maximum softmax probability over the K target
logits (`msp`) and negative energy (`energy`, logsumexp). Metrics: AUROC and FPR at 95%
TPR (reprolib.ood.detection, shared with the Reprogrammer study), ID as the positive class.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

from reprolib.data import get_dataset, info
from reprolib.errors import ReprolibError
from reprolib.images import to_network
from reprolib.ood import detection, noise_images

NOISE_SEED = 12345


def ood_images(target: str, profile, size: int, channels: int, per_set: int) -> dict[str, Tensor]:
    """{'datasets': pooled other-set test images, 'noise': noise images}, [0,1], target-sized.

    Embedded targets use their DatasetInfo.ood_partners; paper targets the profile's other
    targets (only those already on disk).
    """
    candidates = info(target).ood_partners if info(target).kind == "embedded" else profile.targets
    others = tuple(name for name in candidates if name != target)
    return _ood_images(others, str(profile.path("data_root")), size, channels, per_set)


@functools.lru_cache(maxsize=4)   # a sweep worker scores many runs of the same target
def _ood_images(others: tuple[str, ...], data_root: str, size: int, channels: int,
                per_set: int) -> dict[str, Tensor]:
    pooled = []
    for name in others:
        try:
            split = get_dataset(name, "test", root=data_root, download=False)
        except ReprolibError:
            continue   # a paper set that is not on disk: not downloaded just for OOD scoring
        keep = torch.randperm(len(split), generator=torch.Generator().manual_seed(NOISE_SEED))[:per_set]
        images, _ = split.subset(torch.sort(keep).values).tensors()
        pooled.append(to_network(images, channels, size))
    out = {"noise": noise_images(per_set, channels, size, seed=NOISE_SEED)}
    if pooled:
        out["datasets"] = torch.cat(pooled)
    return out


def ood_metrics(predict_images: Callable[[Tensor], Tensor], id_logits: Tensor,
                images: dict[str, Tensor]) -> dict[str, dict[str, float]]:
    """{'datasets': {...}, 'noise': {...}}: msp / energy AUROC and FPR95 of each OOD group
    (reprolib.ood.detection)."""
    return {group: detection(id_logits, predict_images(x)) for group, x in images.items()}
