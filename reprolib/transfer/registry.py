"""The transfer methods by name: how to build each and the facts the rest of reprolib reads.

`names()` lists them (lp, vp, smm, narrow, medium, full; TransferConfig's choices come from
here), `get(name)` gives a `MethodSpec`, `build_method(name, ctx)` the `TransferMethod`.
Adding a method is one `MethodSpec` entry here (plus its class and a test).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reprolib.data.registry import DatasetInfo
from reprolib.errors import ReprolibError, check_choice
from reprolib.labelmap import LABEL_MAPS
from reprolib.protocols import Protocol
from reprolib.transfer.linear_probe import LinearProbe
from reprolib.transfer.method import MethodContext, TransferMethod
from reprolib.transfer.prompting import PromptMethod, load_side, stored_size


@dataclass(frozen=True)
class MethodSpec:
    """One transfer method: its builder and the facts about it that other modules need."""

    name: str
    build: Callable[[MethodContext], TransferMethod]
    needs_label_map: bool                                  # prompt methods map K of S source logits
    # Side at which the method stores target images for its prompt (recorded as
    # config.prompt_size); None when no prompt places the image (LP).
    prompt_size: Callable[[object, DatasetInfo], int | None]
    summary: str
    # Side at which a run loads the target's split (backbone, target, protocol, split) -> px:
    # the original image resized once to what the method stores (docs/methods.md s.4).
    # `backbone` only needs `input_size` (a Backbone or a models.registry BackboneSpec).
    load_side: Callable[[object, DatasetInfo, Protocol, str], int] = lambda backbone, target, protocol, split: (
        backbone.input_size)
    # The Protocol fields only this method reads (its hyperparameters): a run's identity holds
    # these and not the other methods', so a new field for one method changes no other run id.
    # The schedule every method shares (epochs, batches, milestones, gamma, seed) is hashed apart.
    hparams: tuple[str, ...] = ()


def _prompt(kind: str, summary: str, hparams: tuple[str, ...]) -> MethodSpec:
    return MethodSpec(name=kind, build=lambda ctx: PromptMethod(ctx, kind), needs_label_map=True,
                      prompt_size=lambda backbone, target: stored_size(kind, backbone, target), summary=summary,
                      load_side=lambda backbone, target, protocol, split: load_side(kind, backbone, target,
                                                                                   protocol, split),
                      hparams=hparams)


# SMM's augmentation (crops, flips where `flip` allows) applies to the watermark prompts and SMM.
_AUGMENTED = ("augment", "flip")


_SPECS: dict[str, MethodSpec] = {spec.name: spec for spec in (
    # LP: the original image resized once to the backbone input (the default load_side).
    MethodSpec(name="lp", build=LinearProbe, needs_label_map=False, prompt_size=lambda backbone, target: None,
               summary="linear probe: a new head on cached penultimate features", hparams=("lp_lr",)),
    _prompt("vp", "padding prompt: a learned frame around the image at the dataset's prompt_size", ("prompt_lr",)),
    _prompt("smm", "sample-specific multi-channel masks (SMM)",
            ("prompt_lr", "generator_lr", "generator_lr_vit", *_AUGMENTED)),
    _prompt("narrow", "watermark prompt, narrow frame", ("prompt_lr", *_AUGMENTED)),
    _prompt("medium", "watermark prompt, medium frame", ("prompt_lr", *_AUGMENTED)),
    _prompt("full", "watermark prompt over the whole image", ("prompt_lr", *_AUGMENTED)),
)}


def names() -> tuple[str, ...]:
    return tuple(_SPECS)


def prompt_methods() -> tuple[str, ...]:
    """The methods that learn a prompt and need a label map."""
    return tuple(name for name, spec in _SPECS.items() if spec.needs_label_map)


def get(name: str) -> MethodSpec:
    return _SPECS[check_choice("method", name, names())]


def build_method(name: str, ctx: MethodContext) -> TransferMethod:
    """The method `name` built from `ctx`; a label map is checked against the method's needs."""
    spec = get(name)
    if spec.needs_label_map and ctx.label_map is None:
        raise ReprolibError(f"method {name!r} needs a label map; valid choices: {', '.join(LABEL_MAPS)}")
    if not spec.needs_label_map and ctx.label_map is not None:
        raise ReprolibError(f"method {name!r} takes no label map, got {ctx.label_map!r}; valid choices: none")
    return spec.build(ctx)
