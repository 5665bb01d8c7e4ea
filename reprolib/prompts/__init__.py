"""Visual prompts: map a [0, 1] target batch to a normalised backbone input (docs/methods.md s.1, s.5).

Registry names (`PROMPTS`): vp (padding prompt), narrow | medium | full (watermark
prompts), smm (sample-specific masks). Every prompt module has `forward(x)` (the
prompted, normalised input) and `unprompted(x)` (the same input with the learned part
removed: zero frame / zero delta), which the paper's FLM uses.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from reprolib.errors import ReprolibError, check_choice
from reprolib.images import match_channels, resize
from reprolib.prompts.common import Normalization, augment, augment_pad
from reprolib.prompts.padding import PaddingPrompt, pad_offsets
from reprolib.prompts.smm import LAYERS_BY_FAMILY, SMMPrompt, layers_for_family, upsample_patches, valid_patch_sizes
from reprolib.prompts.watermark import WATERMARK_KINDS, WatermarkPrompt, frame_width

PROMPTS = ("vp", "narrow", "medium", "full", "smm")
SMM_DEFAULT_PATCH = 8

__all__ = [
    "PROMPTS",
    "PaddingPrompt",
    "SMMPrompt",
    "WatermarkPrompt",
    "augment",
    "augment_pad",
    "frame_width",
    "get",
    "get_prompt",
    "layers_for_family",
    "match_channels",
    "names",
    "pad_offsets",
    "resize",
    "upsample_patches",
]


def names() -> tuple[str, ...]:
    return PROMPTS


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
    backbone family with `layers_for_family`, 6 for ViTs; default 5); without `patch_size` it uses 8 when 8
    divides the input size and otherwise the largest valid power of two below 8 (28 px ->
    4), because SMM's 8 does not fit the embedded 28 px backbone.
    """
    check_choice("prompt method", method, PROMPTS)
    if method == "vp":
        if target_prompt_size is None:
            raise ReprolibError("prompt method 'vp' needs target_prompt_size (the padded image size)")
        _no_extra(method, kw, ())
        return PaddingPrompt(target_prompt_size, backbone_input_size, channels, normalize)
    if method in WATERMARK_KINDS:
        _no_extra(method, kw, ())
        return WatermarkPrompt(method, backbone_input_size, channels, normalize)
    _no_extra(method, kw, ("patch_size", "layers"))
    layers = kw.get("layers", 5)
    patch_size = kw.get("patch_size")
    if patch_size is None and isinstance(backbone_input_size, int) and layers in (5, 6):
        fitting = [p for p in valid_patch_sizes(backbone_input_size, layers) if p <= SMM_DEFAULT_PATCH]
        patch_size = fitting[0] if fitting else SMM_DEFAULT_PATCH
    return SMMPrompt(backbone_input_size, patch_size or SMM_DEFAULT_PATCH, layers, channels, normalize)


def _no_extra(method: str, kw: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in kw:
        if key not in allowed:
            valid = ", ".join(allowed) or "none"
            raise ReprolibError(f"unknown option {key!r} for prompt method {method!r}; valid choices: {valid}")


get = get_prompt
