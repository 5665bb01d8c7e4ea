"""The parts of a transfer run's resolved description that are read from its data and its entries.

A run's id is the hash of its whole resolved description (`reprolib.transfer.run.resolve`, hashed
by `records.record_id`): every field is hashed except those on `records.NEUTRAL_KEYS` (how the
study names the run, each proven by a test not to change a number). This is open_lth's way: no
hand-picked subset, so a field added to the description is hashed unless it is put on that list
with a proof (tests/test_run_description.py walks every field). This module assembles:

- data (`data_description`): per split (train, test), the loader's split definition
  (`ImageSplit.definition`, free of machine paths) and a content fingerprint of the split the
  run reads (`ImageSplit.content_fingerprint`: its images at the side the method loads them, and
  its labels; for a paper set the image cache's digest, computed once when the cache was
  written, so no process hashes gigabytes); the few-shot draw and the validation carve as
  digests of the positions they pick (`draw`), so a change to the drawing code changes the id.
- geometry (`geometry`): the backbone's input size, channels and normalisation mean/std (every
  method reads them); the side each split is loaded at; for a prompt method the prompt as its
  `PromptKind` builds it for this backbone and target (the options the backbone fixes, e.g.
  SMM's generator depth; the parameters' shapes; a digest of its buffers: the padding prompt's
  mask, which holds the dataset's prompt size or the backbone's prompt side, the watermark
  frame, the normalisation), whether its augmentation mirrors this target, and its optimisers
  and schedulers as the kind builds them (so the backbone family's SMM generator rate and decay
  count). A fact only one kind of prompt reads enters through that prompt, so it changes no
  other method's id.
- the method's own hyperparameters (`transfer.registry.method_hparams`, from its entry).

Where each fact of a dataset's entry that can change a number is held: num_classes (the flat
field: the label map's size and the logits' width); image_size, channels, native_size, loader
(the images served: the content fingerprint); prompt_size (the flat prompt_size and the padding
mask); mirror_safe (geometry's augmentation); small_batch (batch_size); legacy_ece_batches
(legacy_ece_batch); ood_partners (ood_partners). Class names and split sizes change no number.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch

from reprolib.data import few_shot_indices, get_dataset
from reprolib.data.registry import SPLITS, info
from reprolib.errors import ReprolibError
from reprolib.models.registry import get_spec
from reprolib.prompts import get_kind
from reprolib.prompts.kinds import augments_under, flips
from reprolib.sparsity.digest import tensors_digest
from reprolib.transfer.registry import get as get_method
from reprolib.transfer.registry import method_hparams


def read_splits(cfg, profile, protocol) -> tuple[Any, Any]:
    """The target's whole train and test splits (ImageSplits), each at the side the method loads it
    (MethodSpec.load_side: paper images resized once from the original, docs/methods.md s.4)."""
    root, download = profile.path("data_root"), profile.download
    spec, backbone, target = get_method(cfg.method), get_spec(profile.backbone), info(cfg.target)
    return tuple(get_dataset(cfg.target, split, root=root, download=download,
                             size=spec.load_side(backbone, target, protocol, split)) for split in SPLITS)


def carve_validation(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train positions, val positions): per class ceil(fraction * n) held out when n >= 2."""
    generator = torch.Generator().manual_seed(seed + 7919)   # independent of the few-shot draw
    train_idx, val_idx = [], []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_val = min(math.ceil(fraction * len(members) - 1e-9), len(members) - 1) if len(members) >= 2 else 0
        val_idx.append(members[:n_val])
        train_idx.append(members[n_val:])
    val = torch.sort(torch.cat(val_idx)).values
    if len(val) == 0:
        raise ReprolibError("select_best_on_val needs at least 2 training images in some class; "
                            "valid choices: n_shot >= 2 or -1")
    return torch.sort(torch.cat(train_idx)).values, val


def draw(labels: torch.Tensor, cfg, seed: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(training positions, validation positions) in the whole training split: the few-shot draw
    (None: every image), then, with `select_best_on_val`, the validation split carved from it."""
    few = few_shot_indices(labels, cfg.n_shot, seed) if cfg.n_shot != -1 else None
    if not cfg.select_best_on_val:
        return few, None
    train, val = carve_validation(labels if few is None else labels[few], cfg.val_fraction, seed)
    return (train, val) if few is None else (few[train], few[val])


def positions_digest(positions: torch.Tensor | None) -> str | None:
    """Hex digest of the positions a draw picked (None: the whole split, or no validation split)."""
    if positions is None:
        return None
    return hashlib.blake2b(positions.to(torch.int64).numpy().astype("<i8").tobytes(), digest_size=16).hexdigest()


def data_description(train, test, picked: tuple[torch.Tensor | None, torch.Tensor | None]) -> dict[str, Any]:
    """The data part of the description: each split's definition and content, the draw and the carve."""
    out = {split.split: {"definition": split.definition, "content": split.content_fingerprint()}
           for split in (train, test)}
    return {**out, "draw": positions_digest(picked[0]), "validation": positions_digest(picked[1])}


def geometry(spec, backbone, target, protocol) -> dict[str, Any]:
    """The geometry part: the backbone's input facts, the sides the splits are loaded at, the prompt."""
    return {"input_size": backbone.input_size, "channels": backbone.channels, "mean": list(backbone.mean),
            "std": list(backbone.std),
            "load_sides": {split: spec.load_side(backbone, target, protocol, split) for split in SPLITS},
            "prompt": prompt_geometry(spec, backbone, target, protocol)}


def prompt_geometry(spec, backbone, target, protocol) -> dict[str, Any] | None:
    """A prompt method's prompt as its PromptKind builds it in front of `backbone` for `target`
    (None for a method without an input prompt); the parameters' values are not part of it (they
    start from the seed, which is hashed apart)."""
    if not spec.input_prompt:
        return None
    kind = get_kind(spec.name)
    with torch.random.fork_rng(devices=[]):   # building draws SMM's initial weights: leave the RNG be
        prompt = kind.build(backbone, target)
    hparams = method_hparams(spec, protocol)
    augments = augments_under(kind, hparams)
    optimizers, schedulers = kind.optimizers(prompt, backbone, protocol, hparams, protocol.epochs)
    return {"options": kind.backbone_options(backbone),
            "parameters": {name: list(p.shape) for name, p in prompt.named_parameters()},
            "buffers": tensors_digest(dict(prompt.named_buffers())),
            "augmentation": {"flips": flips(hparams, target)} if augments else None,
            "optimizers": [[{key: list(group[key]) if key == "betas" else group[key] for key in OPTIMIZER_FACTS}
                            for group in optimizer.param_groups] for optimizer in optimizers],
            "schedulers": [{"milestones": sorted(scheduler.milestones.elements()), "gamma": scheduler.gamma}
                           for scheduler in schedulers]}


# What a prompt's Adam optimisers are built with (each param group's), as its PromptKind builds
# them: the backbone family's SMM generator rate and decay count, not only the preset's numbers.
OPTIMIZER_FACTS = ("lr", "betas", "eps", "weight_decay")
