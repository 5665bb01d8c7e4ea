"""Evaluation sets and metrics of the Reprogrammer study (docs/methods.md s.6, issue 6).

- ID accuracy on the target's test set.
- OOD generalisation (covariate shift): accuracy on seeded corruptions of the ID test set
  (`reprolib.scores.ood.corrupt`: rotation, blur, noise, contrast) at the recipe's severities. The
  paper's natural shifts (CIFAR-10.1, STL10, ImageNet variants) are not in the data registry;
  corruptions stand in for them in every profile.
- OOD detection (semantic shift): max softmax probability of the logits (100 x cosine logits for
  the encoder methods, the head's logits for the linear probe), AUROC and FPR at 95% TPR with the
  ID test set positive. OOD sets: the target's DatasetInfo.ood_partners (test splits, brought
  to the target's native size and channels by reprolib.images.to_network; a partner that is not
  on disk fails the study in one line, as in the transfer runs: none is skipped) plus
  uniform-noise images. The paper's iSUN / LSUN / Places365 are
  not available offline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from reprolib.data import get_dataset, info
from reprolib.errors import ReprolibError
from reprolib.images import to_network
from reprolib.scores.ood import CORRUPTIONS, corrupt, detection_metrics, msp, noise_images
from reprolib.reprogrammer.recipe import ReprogrammerRecipe


@dataclass
class EvalSets:
    """All images one method is scored on; `items()` names them id, <kind>/<severity>, ood/<name>."""

    id_images: torch.Tensor
    id_labels: torch.Tensor
    corrupted: dict[str, dict[int, torch.Tensor]] = field(default_factory=dict)
    ood: dict[str, torch.Tensor] = field(default_factory=dict)

    def items(self) -> list[tuple[str, torch.Tensor]]:
        out = [("id", self.id_images)]
        out += [(f"{kind}/{sev}", x) for kind, by_sev in self.corrupted.items() for sev, x in by_sev.items()]
        out += [(f"ood/{name}", x) for name, x in self.ood.items()]
        return out


def seeded_subset(x: torch.Tensor, y: torch.Tensor | None, cap: int, seed: int):
    """At most `cap` rows of x (and y), drawn by `seed` and kept in their order; cap -1 = all."""
    if cap < 0 or len(x) <= cap:
        return x, y
    pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:cap].sort().values
    return x[pick], (None if y is None else y[pick])


def build_eval_sets(target: str, recipe: ReprogrammerRecipe, seed: int = 1,
                    data_root: Path | None = None) -> EvalSets:
    """ID test set, its corruptions, and the OOD sets (every partner, plus noise)."""
    test = get_dataset(target, "test", root=data_root)
    x, y = seeded_subset(*test.tensors(), recipe.max_eval, seed)
    size, channels = x.shape[-1], x.shape[1]
    sets = EvalSets(x, y)
    for kind in CORRUPTIONS:
        sets.corrupted[kind] = {sev: corrupt(x, kind, sev, seed=seed) for sev in recipe.severities}
    for name in info(target).ood_partners:
        try:
            ood_x, _ = get_dataset(name, "test", root=data_root).tensors()
        except ReprolibError as err:   # every partner counts (DatasetInfo.ood_partners): none is skipped
            raise ReprolibError(f"OOD partner {name} of {target} is not available ({err}); fetch every target "
                                "and partner first: python -m reprolib data --prepare --profile P") from None
        ood_x, _ = seeded_subset(ood_x, None, recipe.max_eval, seed)
        sets.ood[name] = to_network(ood_x, channels, size)
    sets.ood["noise"] = noise_images(recipe.n_noise, channels, size, seed=seed)
    return sets


def metrics_from_logits(logits: dict[str, torch.Tensor], sets: EvalSets) -> dict:
    """id_accuracy, ood_generalisation {kind: {severity: acc}}, mean_covariate_accuracy,
    ood_detection {set: {auroc, fpr95}} (MSP score), all fractions in [0, 1]."""
    def accuracy(key: str) -> float:
        return float((logits[key].argmax(dim=1) == sets.id_labels).float().mean())

    shift = {kind: {str(sev): accuracy(f"{kind}/{sev}") for sev in by_sev}
             for kind, by_sev in sets.corrupted.items()}
    flat = [a for by_sev in shift.values() for a in by_sev.values()]
    id_scores = msp(logits["id"])
    detection = {name: detection_metrics(id_scores, msp(logits[f"ood/{name}"])) for name in sets.ood}
    return {"id_accuracy": accuracy("id"), "ood_generalisation": shift,
            "mean_covariate_accuracy": sum(flat) / len(flat) if flat else float("nan"),
            "ood_detection": detection}
