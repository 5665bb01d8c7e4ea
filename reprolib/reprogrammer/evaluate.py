"""Evaluation sets and metrics of the Reprogrammer study (docs/methods.md s.6, issue 6).

- ID accuracy on the target's test set.
- OOD generalisation (covariate shift): accuracy on seeded corruptions of the ID test set
  (`reprolib.scores.ood.corrupt`: rotation, blur, noise, contrast) at the recipe's severities. The
  paper's natural shifts (CIFAR-10.1, STL10, ImageNet variants) are not in the data registry;
  corruptions stand in for them in every profile.
- OOD detection (semantic shift): max softmax probability of the logits (100 x cosine logits for
  the encoder methods, the head's logits for the linear probe), AUROC and FPR at 95% TPR with the
  ID test set positive. OOD sets: the target's DatasetInfo.ood_partners (test splits, brought
  to the target's native size and channels by reprolib.images.to_network; a partner that cannot
  be loaded, e.g. a paper set not downloaded, is a one-line error naming it: never skipped, so a
  table's OOD columns always mean the same sets) plus uniform-noise images. The paper's iSUN /
  LSUN / Places365 are not available offline.
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
    """ID test set, its corruptions, and the OOD sets (partners that load, plus noise)."""
    test = get_dataset(target, "test", root=data_root)
    x, y = seeded_subset(*test.tensors(), recipe.max_eval, seed)
    size, channels = x.shape[-1], x.shape[1]
    sets = EvalSets(x, y)
    for kind in CORRUPTIONS:
        sets.corrupted[kind] = {sev: corrupt(x, kind, sev, seed=seed) for sev in recipe.severities}
    for name in info(target).ood_partners:
        ood_x, _ = ood_split(target, name, data_root).tensors()
        ood_x, _ = seeded_subset(ood_x, None, recipe.max_eval, seed)
        sets.ood[name] = to_network(ood_x, channels, size)
    sets.ood["noise"] = noise_images(recipe.n_noise, channels, size, seed=seed)
    return sets


def ood_split(target: str, name: str, data_root: Path | None):
    """The test split of `target`'s OOD partner `name`; one that cannot be loaded is a one-line error."""
    try:
        return get_dataset(name, "test", root=data_root)
    except ReprolibError as err:
        raise ReprolibError(f"Reprogrammer OOD set {name!r} (a partner of {target}) cannot be loaded: {err}") from None


def metrics_from_logits(logits: dict[str, torch.Tensor], id_labels: torch.Tensor) -> dict:
    """id_accuracy, ood_generalisation {kind: {severity: acc}}, mean_covariate_accuracy,
    ood_detection {set: {auroc, fpr95}} (MSP score), all fractions in [0, 1]. `logits` is keyed as
    EvalSets.items() names the sets (id, <kind>/<severity>, ood/<name>), in that order."""
    def accuracy(key: str) -> float:
        return float((logits[key].argmax(dim=1) == id_labels).float().mean())

    shift: dict[str, dict[str, float]] = {}
    for key in logits:
        if key != "id" and not key.startswith("ood/"):
            kind, severity = key.split("/")
            shift.setdefault(kind, {})[severity] = accuracy(key)
    flat = [a for by_sev in shift.values() for a in by_sev.values()]
    id_scores = msp(logits["id"])
    detection = {key.removeprefix("ood/"): detection_metrics(id_scores, msp(value))
                 for key, value in logits.items() if key.startswith("ood/")}
    return {"id_accuracy": accuracy("id"), "ood_generalisation": shift,
            "mean_covariate_accuracy": sum(flat) / len(flat) if flat else float("nan"),
            "ood_detection": detection}
