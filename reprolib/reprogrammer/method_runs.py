"""How each method of the Reprogrammer study makes its logits on every evaluation set of a target
(the `run` of its entry in reprolib/reprogrammer/methods.py).

Each function takes the target's `TargetRun` and the records it is asked for, [(record key, alpha
to mix at)], and returns ({record key: {eval set: logits}}, training curves). The Reprogrammer is
trained once for all its records: its image and text features are computed once and mixed with
zero-shot's per alpha (alpha 0 is the plain Reprogrammer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from reprolib.reprogrammer import train as T
from reprolib.reprogrammer.recipe import ReprogrammerRecipe
from reprolib.reprogrammer.reprogram import residual_mix

Logits = dict[str, torch.Tensor]              # eval set -> logits
Wanted = list[tuple[Any, float | None]]       # (record key, alpha to mix at)


@dataclass(frozen=True)
class TargetRun:
    """What every method reads for one target: the encoder and its zero-shot text features, the
    training subset, the recipe, and `score(forward)`: the logits of every eval set."""

    encoder: Any
    zs_text: torch.Tensor
    x_train: torch.Tensor
    y_train: torch.Tensor
    class_names: list[str]
    recipe: ReprogrammerRecipe
    seed: int
    device: str
    score: Callable[[Callable], Logits]

    @property
    def scale(self) -> float:
        return self.recipe.logit_scale_eval


def zero_shot_logits(run: TargetRun, wanted: Wanted) -> tuple[dict[Any, Logits], dict]:
    logits = run.score(lambda b: run.scale * run.encoder.image_features(b) @ run.zs_text.T)
    return {key: logits for key, _ in wanted}, {}


def linear_probe_logits(run: TargetRun, wanted: Wanted) -> tuple[dict[Any, Logits], dict]:
    head = T.train_linear_probe(T.zero_shot_features(run.encoder, run.x_train, device=run.device), run.y_train,
                                len(run.class_names), run.recipe, run.seed).to(run.device)
    logits = run.score(lambda b: head(run.encoder.image_features(b)))
    return {key: logits for key, _ in wanted}, {}


def finetune_logits(run: TargetRun, wanted: Wanted) -> tuple[dict[Any, Logits], dict]:
    tuned = T.train_finetune(run.encoder, run.x_train, run.y_train, run.zs_text, run.recipe, run.seed, run.device)
    logits = run.score(tuned)   # the head's logits (public: trained, from 100 x text)
    return {key: logits for key, _ in wanted}, {}


def reprogrammer_logits(run: TargetRun, wanted: Wanted) -> tuple[dict[Any, Logits], dict]:
    model, losses = T.train_reprogrammer(run.encoder, run.x_train, run.y_train, run.class_names, run.recipe,
                                         run.seed, run.device)
    curves = {"epoch": list(range(1, len(losses) + 1)), "train_loss": losses}
    with torch.no_grad():
        rep_text = model.text_features()
    rep_images, zs_images = run.score(model.image_features), run.score(model.zero_shot_image_features)
    out = {}
    for key, alpha in wanted:
        text = residual_mix(rep_text, model.zero_shot_text, alpha).cpu()
        out[key] = {k: run.scale * residual_mix(rep_images[k], zs_images[k], alpha) @ text.T for k in rep_images}
    return out, curves
