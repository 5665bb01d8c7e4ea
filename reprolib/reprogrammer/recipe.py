"""The Reprogrammer recipe: `profile.reprogrammer` (a dict in the YAML) validated into a dataclass.

Paper values (docs/methods.md s.6, Geng & Chen 2024) are the defaults of `ReprogrammerRecipe`
(paper.yaml: `reprogrammer: {}`). `recipe_for(profile)` applies the profile's `reprogrammer:`
dict on top of them; every departure is written in that YAML (embedded.yaml, smoke.yaml), none
is chosen by profile name. An unknown key or a wrongly typed value is a one-line ReprolibError.

The two trained baselines (`baselines`, see BASELINES; docs/methods.md s.6):
- "public" (the default): as IBM/reprogrammer's linear_probing.py and fine_tune.py run them.
  Linear probe: Adam, lr 0.01, no weight decay, 25 epochs. Fine-tuning: AdamW (lr 3e-5,
  betas 0.9/0.98, eps 1e-6, wd 0.1) on the image tower AND a trainable linear head whose weight
  starts at 100 x the unit-normalised zero-shot class text features (the public code multiplies
  by CLIP's exp'd logit scale, which is 100 for the OpenAI weights) and whose bias starts at 0,
  25 epochs. Both follow the per-step `step_decay` schedule: lr x0.5 / x0.2 / x0.1 once 40 / 70 /
  80% of all steps are done (`step_milestones`, `step_factors`), no warm-up.
- "reprolib_v1" (what reprolib ran before issue 10, kept to compare with old records): the
  linear probe at a constant lr (no schedule); fine-tuning with AdamW under a warm-up (capped
  as the Reprogrammer's) + cosine schedule against a FIXED head, the zero-shot text features
  times the encoder's logit scale (scored on `logit_scale_eval` x cosine logits). Its epochs
  and lr were lp_epochs 100, finetune_epochs 10, finetune_lr 3e-5 (embedded: 50, 4, 1e-3;
  smoke: 10, 1, 1e-3): set them beside `baselines: reprolib_v1` to rerun it exactly.

Departures in embedded.yaml and smoke.yaml (documented here because they are ours):
- encoder "embedded" is a small dual encoder trained here on Fashion-MNIST; it stands in for CLIP.
- frame 2 px: the paper's 16 px frame on a 224 px input is 16/224 of the side; at 28 px that is 2 px.
- epochs 15 (embedded) / 2 (smoke) instead of 25, and the 500 warm-up steps are capped at
  `warmup_max_fraction` (5%) of all steps, the paper's own ratio (500 of ~9.8k CIFAR-10 steps).
- baselines: fine-tuning gets the Reprogrammer's share of the paper's 25 epochs (embedded 15,
  smoke 2; the step schedule scales with the steps), at lr 1e-3 instead of 3e-5 (set for the
  small stand-in encoder). The linear probe keeps the paper's 25 epochs: it trains on cached
  features, so its epochs cost almost nothing (and 2 epochs leave the smoke probe at chance).
- batch 128 as in the paper (64 in smoke); caps on training / evaluation sizes (max_train,
  max_eval, n_noise; smoke: one severity, 3) keep `make figures` and the tests short.
- the stand-in encoder: 3 epochs on 20,000 Fashion-MNIST images (smoke: 3,000).
"""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Any

from pydantic import Field

from reprolib.config import Count, NonNegative, Positive, choice_of, schema, validated
from reprolib.errors import ReprolibError

ENCODERS = ("embedded", "open_clip")
CONTRASTIVE_TARGETS = ("diagonal", "same_class")
BASELINES = ("public", "reprolib_v1")   # the linear-probe / fine-tuning variants (module docstring)
SEVERITIES = (1, 2, 3, 4, 5)
Cap = Annotated[int, Field(ge=-1)]                   # -1 = all
Weight = Annotated[float, Field(ge=0, le=1)]
PositiveFraction = Annotated[float, Field(gt=0, le=1)]


@schema("reprogrammer recipe key", "reprogrammer.")
class ReprogrammerRecipe:
    """All numbers of one Reprogrammer study (defaults = the paper's); see the module docstring."""

    encoder: Annotated[str, choice_of("reprogrammer encoder", lambda: ENCODERS)] = "open_clip"  # embedded | open_clip
    # open_clip model name, or "tiny" (a 32 px, 1-layer CLIP config for the paper dry run)
    open_clip_arch: str = "ViT-B-32"
    open_clip_pretrained: str = "openai"   # weights tag; "" = random initialisation (dry run)
    template: str = "a photo of a {}"
    frame: Count = 16                      # frame width in pixels at the encoder's input size
    epochs: Count = 25
    batch_size: Count = 128
    lr_image: Positive = 0.005             # Adam on W
    wd_image: Annotated[float, Field(ge=0)] = 0.1
    lr_text: Positive = 5e-4               # AdamW on token + positional embeddings
    wd_text: Annotated[float, Field(ge=0)] = 0.1
    betas_text: Annotated[list[Weight], Field(min_length=2, max_length=2)] = field(default_factory=lambda: [0.9, 0.98])
    eps_text: Positive = 1e-6
    warmup_steps: NonNegative = 500
    warmup_max_fraction: PositiveFraction = 1.0   # warm-up = min(warmup_steps, fraction * total steps)
    focal_alpha: Weight = 0.8
    focal_gamma: Annotated[float, Field(ge=0)] = 4.0
    residual_alpha: Weight = 0.4
    logit_scale_eval: Positive = 100.0     # OOD scores: max softmax of 100 x cosine logits
    # baselines (docs/methods.md s.6; the module docstring)
    baselines: Annotated[str, choice_of("reprogrammer baselines", lambda: BASELINES)] = "public"  # public | reprolib_v1
    lp_epochs: Count = 25                  # linear probe on frozen image features (Adam, no weight decay)
    lp_lr: Positive = 0.01
    finetune_epochs: Count = 25            # image tower + head fine-tuning (AdamW, CE)
    finetune_lr: Positive = 3e-5
    finetune_head_scale: Positive = 100.0  # public head: weight = scale x zero-shot text features, bias 0
    step_milestones: list[PositiveFraction] = field(default_factory=lambda: [0.4, 0.7, 0.8])   # fractions of all steps
    step_factors: list[Positive] = field(default_factory=lambda: [0.5, 0.2, 0.1])               # x base lr from each
    # evaluation
    severities: Annotated[list[Annotated[int, choice_of("reprogrammer severity", lambda: SEVERITIES)]],
                          Field(min_length=1)] = field(default_factory=lambda: [1, 3, 5])
    max_train: Cap = -1                    # cap on target training images (-1 = all)
    max_eval: Cap = -1                     # cap on each test / OOD set (-1 = all)
    n_noise: Count = 1000                  # noise OOD images
    # embedded stand-in encoder (trained contrastively on Fashion-MNIST captions)
    encoder_epochs: Count = 4
    encoder_train_size: Count = 20000
    encoder_lr: Positive = 3e-3
    encoder_batch_size: Count = 128

    def __post_init__(self) -> None:
        """What no single field says: the template's slot, and the step schedule's shape."""
        if "{}" not in self.template:
            raise ReprolibError(f"reprogrammer.template must contain '{{}}' for the class name, got {self.template!r}")
        if len(self.step_milestones) != len(self.step_factors):
            raise ReprolibError(f"reprogrammer.step_milestones and step_factors must have the same length, "
                                f"got {self.step_milestones} and {self.step_factors}")
        if list(self.step_milestones) != sorted(self.step_milestones):
            raise ReprolibError(f"reprogrammer.step_milestones must be increasing fractions in (0, 1], got {self.step_milestones}")


def make_recipe(values: dict[str, Any]) -> ReprogrammerRecipe:
    """A recipe from a mapping, refusing unknown keys, wrong types and impossible values (one line)."""
    return validated(ReprogrammerRecipe, values, "reprogrammer")


def recipe_for(profile: Any) -> ReprogrammerRecipe:
    """The recipe defaults (the paper's values) updated with the profile's `reprogrammer:` dict."""
    return make_recipe(dict(profile.reprogrammer or {}))
