"""Key names of other ResNet implementations, mapped onto torchvision's.

SparseZoo / sparseml's ResNet (v1) names its modules `input.{conv,bn}`, `sections.<i>.<j>.
{conv1..3, bn1..3}`, `sections.<i>.<j>.identity.{conv,bn}` (the projection shortcut) and
`classifier.fc`; torchvision calls the same tensors `conv1`/`bn1`, `layer<i+1>.<j>.…`,
`layer<i+1>.<j>.downsample.{0,1}` and `fc`. Shapes and order of the tensors are the same
(both put the stride on the 3x3 conv of a bottleneck), so renaming keys is the whole mapping.
A state dict in neither naming is returned unchanged; the loader's strict key check then
names what does not match.

STR (RAIVNLab/STR) saves its STRConv layers as `<conv>.weight` plus a learned scalar
`<conv>.sparseThreshold` s; the network uses sign(w) * relu(|w| - sigmoid(s)) (the soft
threshold of the STR paper, with its default sigmoid), so the raw weights are not the sparse
ones. `apply_str_thresholds` forms the effective weights, whose zeros are the mask; its
"Dense" (converted) files need nothing. Only the sigmoid threshold is supported: that is
the one the released ResNet50s use, per the paper.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

STR_THRESHOLD = ".sparseThreshold"

# (pattern, replacement) in order; each key is renamed by the first pattern that matches.
SPARSEML_TO_TORCHVISION = (
    (re.compile(r"^input\.conv\."), "conv1."),
    (re.compile(r"^input\.bn\."), "bn1."),
    (re.compile(r"^sections\.(\d+)\.(\d+)\.identity\.conv\."), "layer{0}.{1}.downsample.0."),
    (re.compile(r"^sections\.(\d+)\.(\d+)\.identity\.bn\."), "layer{0}.{1}.downsample.1."),
    (re.compile(r"^sections\.(\d+)\.(\d+)\."), "layer{0}.{1}."),
    (re.compile(r"^classifier\.fc\."), "fc."),
)


def is_sparseml(state: dict[str, Tensor]) -> bool:
    """Whether `state` uses sparseml's ResNet names (its stem conv is `input.conv.weight`)."""
    return "input.conv.weight" in state and any(k.startswith("sections.") for k in state)


def _rename(key: str) -> str:
    for pattern, template in SPARSEML_TO_TORCHVISION:
        match = pattern.match(key)
        if match:
            # sparseml counts sections from 0, torchvision's layers from 1
            groups = [str(int(g) + 1) if i == 0 else g for i, g in enumerate(match.groups())]
            return template.format(*groups) + key[match.end():]
    return key


def to_torchvision(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], str | None]:
    """(state with torchvision key names, the naming it came in: "sparseml" or None)."""
    if not is_sparseml(state):
        return state, None
    return {_rename(k): v for k, v in state.items()}, "sparseml"


def apply_str_thresholds(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """STR's effective weights sign(w) * relu(|w| - sigmoid(s)); the threshold keys dropped."""
    thresholds = [k for k in state if k.endswith(STR_THRESHOLD)]
    if not thresholds:
        return state
    out = {k: v for k, v in state.items() if not k.endswith(STR_THRESHOLD)}
    for key in thresholds:
        weight_key = key[: -len(STR_THRESHOLD)] + ".weight"
        if weight_key in out:
            w = out[weight_key]
            out[weight_key] = torch.sign(w) * torch.relu(w.abs() - torch.sigmoid(state[key].to(w.dtype)))
    return out
