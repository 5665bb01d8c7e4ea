"""Ticket files on disk: safe readers and writers for the common lottery-ticket formats.

Readers return plain `dict[str, Tensor]` with wrapper prefixes removed; they never build a
network (that is `reprolib.sparsity.load`). The tests write each format with their own
writers (tests/ticket_files.py). Formats:

- RLT (public code): `{arch}_dyn4_{S}_checkpoint.pth` (state dict, maybe under "state_dict")
  + `{arch}_dyn4_{S}_mask.pth` (name -> 0/1 tensor); either file may carry "model." keys.
- open_lth level folder: `mask.pth` (int 0/1), `model_ep{E}_it{I}.pth`, `sparsity_report.json`
  ({"total": n, "unpruned": k}); a saved PrunedModel also holds `mask_<a___b>` buffers.
- torch.nn.utils.prune state dict: `<m>.weight_orig` (dense) + `<m>.weight_mask` (0/1).
- plain: any state dict + any mask file; ours: `level_XX/{model.pth, mask.pth, sparsity.json}`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor

from reprolib.errors import ReprolibError
from reprolib.models.weights import load_weights

# Wrapper prefixes stripped from every key: DataParallel, open_lth / RLT model wrappers,
# torch.compile. Stripped repeatedly, so "module.model.conv1.weight" -> "conv1.weight".
WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")
# Keys under which training scripts nest the state dict inside a checkpoint dict.
NESTED_STATE_KEYS = ("state_dict", "model_state_dict")


def names_preview(names, limit: int = 4) -> str:
    """'a, b, c, d (+7 more)': a short list of key names for one-line errors."""
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def rlt_file_names(arch: str, state: int) -> tuple[str, str]:
    """The public code's (checkpoint, mask) file names for sparsity state `state`."""
    return f"{arch}_dyn4_{state}_checkpoint.pth", f"{arch}_dyn4_{state}_mask.pth"


def read_checkpoint(file: Path) -> dict[str, Tensor]:
    """A state dict from `file` via torch.load(weights_only=True), unwrapped from a checkpoint dict."""
    file = Path(file)
    obj = load_weights(file, "valid: a checkpoint of tensors (torch.save(model.state_dict()))")
    if isinstance(obj, dict):
        for key in NESTED_STATE_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise ReprolibError(f"cannot read {file}: expected a state dict (name -> tensor), found {type(obj).__name__}")
    bad = [str(k) for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, Tensor))]
    if bad:
        raise ReprolibError(f"cannot read {file}: expected a state dict (name -> tensor); non-tensor entries: {names_preview(bad)}")
    return dict(obj)


def strip_prefixes(state: dict[str, Tensor], file: Path) -> dict[str, Tensor]:
    """Remove wrapper prefixes from every key (each file independently); collisions are errors."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        name = key
        while name.startswith(WRAPPER_PREFIXES):
            name = name.split(".", 1)[1]
        if name in out:
            raise ReprolibError(f"{file} holds {name!r} twice (with and without a wrapper prefix)")
        out[name] = value
    return out


def check_binary(mask: dict[str, Tensor], file: Path) -> dict[str, Tensor]:
    """The mask as float32 tensors, refusing any entry that is not all 0/1."""
    out = {}
    for name, value in mask.items():
        if bool(torch.count_nonzero(value * (value - 1))):  # one pass; NaN also lands here
            found = torch.unique(value.float())[:4].tolist()
            raise ReprolibError(f"mask {file} is not 0/1: {name!r} holds values such as {found}")
        out[name] = value.to(torch.float32)
    return out


def read_mask(file: Path) -> dict[str, Tensor]:
    """A name -> 0/1 float mask from `file`, prefixes stripped."""
    return check_binary(strip_prefixes(read_checkpoint(file), file), file)


def split_embedded_masks(state: dict[str, Tensor], file: Path) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Separate masks stored inside a state dict from the weights.

    torch.nn.utils.prune stores `<m>.weight_orig` (the dense weight) and `<m>.weight_mask`; the
    effective weight is their product, which the caller forms by applying the mask. open_lth's
    PrunedModel stores `mask_<name with . as ___>` buffers next to already masked weights.
    Returns (weights with plain names, mask); the mask is empty when none is embedded.
    """
    weights: dict[str, Tensor] = {}
    mask: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.endswith("_orig"):
            base = key[: -len("_orig")]
            if base + "_mask" not in state:
                raise ReprolibError(f"{file} holds {key!r} without its {base + '_mask'!r} (torch prune format)")
            weights[base] = value
            mask[base] = state[base + "_mask"]
        elif key.endswith("_mask") and key[: -len("_mask")] + "_orig" in state:
            continue  # consumed with its _orig
        elif key.startswith("mask_") and "___" in key:
            mask[key[len("mask_"):].replace("___", ".")] = value
        else:
            weights[key] = value
    # Names inside masks may carry wrapper prefixes too (open_lth: "model.conv1.weight").
    return strip_prefixes(weights, file), check_binary(strip_prefixes(mask, file), file)


def read_declared_density(file: Path) -> float | None:
    """The density a sparsity report states: {"density": d} (ours) or {"total", "unpruned"} (open_lth)."""
    try:
        report = json.loads(Path(file).read_text())
    except (OSError, ValueError) as err:
        raise ReprolibError(f"cannot read {file}: not a JSON sparsity report ({type(err).__name__})") from None
    if not isinstance(report, dict):
        return None
    if isinstance(report.get("density"), (int, float)):
        return float(report["density"])
    if isinstance(report.get("total"), (int, float)) and isinstance(report.get("unpruned"), (int, float)) and report["total"] > 0:
        return float(report["unpruned"]) / float(report["total"])
    return None
