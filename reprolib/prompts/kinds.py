"""The prompt kinds by name: one `PromptKind` entry per prompt, holding every fact about it.

An entry says how to make its module (`make`, the options it takes), at what side a run
stores the target images for it (`stored_size`), whether SMM's training augmentation applies
to it under an augmenting protocol (`augments`), which options a backbone fixes
(`backbone_options`: SMM's generator depth from the backbone's family), and how it trains
(`optimizers`: its Adam optimisers and their per-epoch schedulers), and its numbers
(`hparams`: prompt_lr, SMM's augmentation and generator rates, per preset where they
differ; transfer.registry.method_hparams reads them), and what it is as a transfer method
(`summary`, its `arms`: display name, colour, place in the prompt comparison; `role`).
`get_prompt` and `transfer/prompting.py` ask the entry, and transfer/registry.py makes one
`MethodSpec` per entry; nothing else compares prompt-kind names.

- vp: the padding prompt at the dataset's prompt_size (or the backbone's `prompt_side`),
  capped at the backbone's input size; stored at that side, never augmented; one Adam.
- narrow / medium / full: watermark prompts at the backbone's input size, their frame widths
  at 224 px in their entries' `settings` (28, 56, the whole image); one Adam.
- smm: sample-specific masks; its generator depth and learning-rate policy come from the
  backbone's `FamilySpec` (models/registry.py): delta at prompt_lr with MultiStepLR, the
  generator at the family's rate, with the same decay when the family says so.

Adding a prompt method is its module plus one `PromptKind` here: the method registry
(transfer/registry.py) builds its `MethodSpec` (a `PromptMethod` of that kind) from the entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from reprolib.errors import ReprolibError, check_choice
from reprolib.models.registry import get_family
from reprolib.protocols import Hyperparameters
from reprolib.prompts.common import Normalization
from reprolib.prompts.padding import PaddingPrompt
from reprolib.prompts.smm import SMMPrompt, valid_patch_sizes
from reprolib.prompts.watermark import WatermarkPrompt
from reprolib.schedules import multistep

SMM_DEFAULT_PATCH = 8
FLIPS = ("always", "mirror_safe")   # the `flip` hyperparameter: which augmented targets may be mirrored

# The numbers of the prompt kinds (Adam, no weight decay), per preset where one differs
# (transfer.registry.method_hparams reads them). Every prompt's learned part (padding theta,
# watermark delta, SMM delta) trains at `prompt_lr`: 0.01 in the papers' presets; the CPU
# presets tuned on digits (embedded, smoke: 0.1; imagenet-lite: 0.05, see protocols.py).
PROMPT_LR = Hyperparameters({"prompt_lr": 0.01}, {"embedded": {"prompt_lr": 0.1}, "smoke": {"prompt_lr": 0.1},
                                                  "imagenet_lite": {"prompt_lr": 0.05},
                                                  "smoke_lite": {"prompt_lr": 0.05}})
# SMM's training augmentation (resize + random crop, flips where `flip` allows: "always", SMM's
# public code, or "mirror_safe", only targets whose DatasetInfo.mirror_safe is set), for the
# kinds that take it: on in the smm preset (flip always) and the embedded and smoke presets;
# RLT and ILM never augment, as in their code; imagenet-lite does not (a second copy of every
# image at 64 + margin px).
AUGMENTATION = Hyperparameters({"augment": False, "flip": "mirror_safe"},
                               {"smm": {"augment": True, "flip": "always"}, "embedded": {"augment": True},
                                "smoke": {"augment": True}})
# SMM's mask generator: lr 0.01 with the delta's decay (CNN families), 0.001 without decay for
# ViTs (the backbone family's FamilySpec.generator_lr picks one).
SMM_GENERATOR = Hyperparameters({"generator_lr": 0.01, "generator_lr_vit": 0.001})


def _input_side(backbone, target) -> int:
    return backbone.input_size


def _vp_side(backbone, target) -> int:
    """The backbone's prompt_side when its spec sets one (every target at one small side),
    else the dataset's prompt_size, capped at the backbone's input size."""
    if backbone.prompt_side is not None:
        return backbone.prompt_side
    return min(target.prompt_size, backbone.input_size)


def _one_adam(prompt: nn.Module, backbone, protocol, hparams: Mapping[str, Any], epochs: int) -> tuple[list, list]:
    """One Adam over every prompt parameter at the kind's prompt_lr, MultiStepLR per epoch."""
    optimizer = torch.optim.Adam(prompt.parameters(), lr=hparams["prompt_lr"], weight_decay=0.0)
    return [optimizer], [multistep(optimizer, protocol.milestone_epochs(epochs), protocol.gamma)]


def _smm_optimizers(prompt: nn.Module, backbone, protocol, hparams: Mapping[str, Any],
                    epochs: int) -> tuple[list, list]:
    """SMM's two Adams: delta at prompt_lr with MultiStepLR; the generator at the backbone
    family's rate, decayed alike when the family says so (SMM's ViT recipe: no decay)."""
    family = get_family(backbone.family)
    milestones = protocol.milestone_epochs(epochs)
    delta_opt = torch.optim.Adam(prompt.delta_parameters(), lr=hparams["prompt_lr"], weight_decay=0.0)
    gen_opt = torch.optim.Adam(prompt.generator_parameters(), lr=family.generator_lr(hparams), weight_decay=0.0)
    schedulers = [multistep(delta_opt, milestones, protocol.gamma)]
    if family.generator_decay:
        schedulers.append(multistep(gen_opt, milestones, protocol.gamma))
    return [delta_opt, gen_opt], schedulers


def _make_vp(input_size: int, channels: int, normalize: Normalization, target_prompt_size: int | None) -> nn.Module:
    if target_prompt_size is None:
        raise ReprolibError("prompt method 'vp' needs target_prompt_size (the padded image size)")
    return PaddingPrompt(target_prompt_size, input_size, channels, normalize)


def _make_watermark(input_size: int, channels: int, normalize: Normalization, target_prompt_size: int | None,
                    frame_width_at_224: int | None = None) -> nn.Module:
    return WatermarkPrompt(frame_width_at_224, input_size, channels, normalize)


def _make_smm(input_size: int, channels: int, normalize: Normalization, target_prompt_size: int | None,
              patch_size: int | None = None, layers: int = 5) -> nn.Module:
    """Without `patch_size`: 8 when 8 fits the input size, else the largest valid power of two
    below 8 (28 px -> 4), because SMM's 8 does not fit the embedded 28 px backbone."""
    if patch_size is None and isinstance(input_size, int) and layers in (5, 6):
        fitting = [p for p in valid_patch_sizes(input_size, layers) if p <= SMM_DEFAULT_PATCH]
        patch_size = fitting[0] if fitting else SMM_DEFAULT_PATCH
    return SMMPrompt(input_size, patch_size or SMM_DEFAULT_PATCH, layers, channels, normalize)


@dataclass(frozen=True)
class Arm:
    """One method / label-map combination as figures and claims show it (`name`: the ledger's arm).

    Defined here, below the method registry, because a prompt kind's entry declares its arms (a
    prompt method is its kind: one entry); transfer/registry.py declares LP's and re-exports it."""

    method: str
    label_map: str | None
    label: str                  # display name, e.g. "VP-ILM"
    color: str
    short: str | None = None    # tick label in the prompt-comparison figure; None: not in it
    panel: int | None = None    # position in that figure (SMM against the other prompts, SMM last)

    @property
    def name(self) -> str:
        """'lp', or 'method/label_map' (reprolib.study.ledger.arm_name's form, e.g. 'vp/ilm')."""
        return self.method if not self.label_map else f"{self.method}/{self.label_map}"


def _ilm_arm(kind: str, label: str, color: str, panel: int) -> tuple[Arm, ...]:
    """The one arm of a prompt shown with ILM, in the prompt-comparison figure under its kind's name."""
    return (Arm(kind, "ilm", label, color, short=kind, panel=panel),)


@dataclass(frozen=True)
class PromptKind:
    """One prompt: how to make it, where its images are stored, how it trains (module doc)."""

    name: str
    make: Callable[..., nn.Module]   # (input_size, channels, normalize, target_prompt_size, **options)
    options: tuple[str, ...] = ()    # keyword options a caller may pass to `make`
    # What the entry fixes about its module, passed to `make` every time (the watermark frame's
    # width at 224 px): part of the prompt's geometry, so it lives here and nowhere else.
    settings: Mapping[str, Any] = field(default_factory=dict)
    stored_size: Callable[[Any, Any], int] = _input_side     # (backbone, DatasetInfo) -> px
    # Its numbers: prompt_lr, and SMM's augmentation for the kinds it applies to (module constants).
    hparams: Hyperparameters = PROMPT_LR + AUGMENTATION
    backbone_options: Callable[[Any], dict[str, Any]] = lambda backbone: {}
    # (prompt, backbone, protocol, hparams, epochs) -> (optimisers, per-epoch schedulers)
    optimizers: Callable[..., tuple[list, list]] = _one_adam
    picture_note: str = ""           # what the explorer adds to the caption of its learned delta
    # As a transfer method (transfer/registry.py makes one MethodSpec per kind from these):
    summary: str = ""
    arms: tuple[Arm, ...] = ()       # display order within the method
    role: str | None = None          # transfer.registry.ROLES: what the paper's claims call VP

    @property
    def augments(self) -> bool:
        """Whether SMM's augmentation applies to this kind (where its `augment` number is on)."""
        return set(AUGMENTATION.names()) <= set(self.hparams.names())

    def build(self, backbone, target) -> nn.Module:
        """This prompt in front of `backbone` for `target` (a Backbone or anything with its facts)."""
        return self.make(backbone.input_size, backbone.channels, (backbone.mean, backbone.std),
                         self.stored_size(backbone, target), **self.settings, **self.backbone_options(backbone))


# In the order figures show them (the method registry keeps it): vp, smm, then the watermarks.
_KINDS: dict[str, PromptKind] = {kind.name: kind for kind in (
    PromptKind(name="vp", make=_make_vp, stored_size=_vp_side, hparams=PROMPT_LR,   # never augmented
               summary="padding prompt: a learned frame around the image at the dataset's prompt_size",
               arms=(Arm("vp", "ilm", "VP-ILM", "#d62728", short="pad", panel=0),
                     Arm("vp", "flm", "VP-FLM", "#ff7f0e"), Arm("vp", "rlm", "VP-RLM", "#e377c2")),
               role="prompt"),
    PromptKind(name="smm", make=_make_smm, options=("patch_size", "layers"),
               hparams=PROMPT_LR + SMM_GENERATOR + AUGMENTATION,
               backbone_options=lambda backbone: {"layers": get_family(backbone.family).smm_layers},
               optimizers=_smm_optimizers, picture_note=", times a per-image mask",
               summary="sample-specific multi-channel masks (SMM)", arms=_ilm_arm("smm", "SMM", "#2ca02c", 4)),
    # The SMM paper's watermark prompts: a frame 28 / 56 px wide at 224 px, or the whole image.
    PromptKind(name="narrow", make=_make_watermark, settings={"frame_width_at_224": 28},
               summary="watermark prompt, narrow frame", arms=_ilm_arm("narrow", "narrow", "#9467bd", 1)),
    PromptKind(name="medium", make=_make_watermark, settings={"frame_width_at_224": 56},
               summary="watermark prompt, medium frame", arms=_ilm_arm("medium", "medium", "#8c564b", 2)),
    PromptKind(name="full", make=_make_watermark, settings={"frame_width_at_224": None},
               summary="watermark prompt over the whole image", arms=_ilm_arm("full", "full", "#17becf", 3)),
)}
PROMPTS = tuple(_KINDS)


def names() -> tuple[str, ...]:
    return PROMPTS


def augments_under(kind: PromptKind, hparams: Mapping[str, Any]) -> bool:
    """Whether training batches of `kind` get SMM's augmentation with these numbers."""
    return kind.augments and bool(hparams["augment"])


def flips(hparams: Mapping[str, Any], target) -> bool:
    """Whether the augmentation mirrors images of `target` (DatasetInfo; docs/methods.md s.5)."""
    return check_choice("flip", hparams["flip"], FLIPS) == "always" or target.mirror_safe


def get_kind(name: str) -> PromptKind:
    """The entry of prompt kind `name`; an unknown name is a one-line error listing the choices."""
    return _KINDS[check_choice("prompt method", name, PROMPTS)]


def get_prompt(
    method: str,
    backbone_input_size: int,
    channels: int,
    normalize: Normalization,
    target_prompt_size: int | None = None,
    **kw: Any,
) -> nn.Module:
    """The prompt module for `method` in front of a backbone taking backbone_input_size px.

    vp needs `target_prompt_size` (DatasetInfo.prompt_size: where the image sits).
    Watermark prompts and SMM ignore it (they resize the image to the backbone's size).
    smm accepts `patch_size` and `layers` in **kw (`layers`: 5 or 6; callers take it from the
    backbone family, `FamilySpec.smm_layers`, 6 for ViTs; default 5); without `patch_size` see `_make_smm`.
    """
    kind = get_kind(method)
    for key in kw:
        if key not in kind.options:
            valid = ", ".join(kind.options) or "none"
            raise ReprolibError(f"unknown option {key!r} for prompt method {method!r}; valid choices: {valid}")
    return kind.make(backbone_input_size, channels, normalize, target_prompt_size, **kind.settings, **kw)
