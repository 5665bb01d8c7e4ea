"""Visual prompts: map a [0, 1] target batch to a normalised backbone input (docs/methods.md s.1, s.5).

Registry names (`PROMPTS`, entries in `prompts/kinds.py`: `get_kind(name)` gives a
`PromptKind`): vp (padding prompt), narrow | medium | full (watermark prompts), smm
(sample-specific masks). Every prompt module has `forward(x)` (the
prompted, normalised input) and `unprompted(x)` (the same input with the learned part
removed: zero frame / zero delta), which the paper's FLM uses.
"""

from __future__ import annotations

from reprolib.images import match_channels, resize
from reprolib.prompts.common import augment, augment_pad
from reprolib.prompts.kinds import PROMPTS, SMM_DEFAULT_PATCH, PromptKind, get_kind, get_prompt, names
from reprolib.prompts.padding import PaddingPrompt, pad_offsets
from reprolib.prompts.smm import SMMPrompt, layers_for_family, upsample_patches
from reprolib.prompts.watermark import WatermarkPrompt, frame_width

__all__ = [
    "PROMPTS",
    "SMM_DEFAULT_PATCH",
    "PaddingPrompt",
    "PromptKind",
    "SMMPrompt",
    "WatermarkPrompt",
    "augment",
    "augment_pad",
    "frame_width",
    "get",
    "get_kind",
    "get_prompt",
    "layers_for_family",
    "match_channels",
    "names",
    "pad_offsets",
    "resize",
    "upsample_patches",
]


get = get_prompt
