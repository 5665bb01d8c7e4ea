"""Test helpers: write a ticket in each common format, and measure a loaded ticket's densities.

The library only reads these formats (reprolib.sparsity.formats / load); the tests write
them here, with the public tools' conventions (RLT file names and "model." prefixes,
open_lth level folders, torch.nn.utils.prune state dicts), to check the reader against.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from torch import Tensor, nn

from reprolib.sparsity.formats import rlt_file_names


def _masked_state(net: nn.Module, mask: dict[str, Tensor], apply_mask: bool) -> dict[str, Tensor]:
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    if apply_mask:
        for name, m in mask.items():
            state[name] = state[name] * m.to(state[name].dtype)
    return state


def _prefixed(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {prefix + k: v for k, v in state.items()}


def save_rlt_format(net: nn.Module, mask: dict[str, Tensor], directory: Path, state: int, arch: str,
                    prefix: str = "", mask_prefix: str | None = None, nested: bool = False,
                    apply_mask: bool = True) -> tuple[Path, Path]:
    """Write the public code's two files; `prefix` / `mask_prefix` reproduce its "model." keys.

    `mask_prefix=None` uses `prefix`; `nested=True` stores {"state_dict": ...} as some scripts do.
    Nine parameters: each keyword is one variant of the public files the reader must accept.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ckpt_name, mask_name = rlt_file_names(arch, state)
    weights = _prefixed(_masked_state(net, mask, apply_mask), prefix)
    torch.save({"state_dict": weights} if nested else weights, directory / ckpt_name)
    mp = prefix if mask_prefix is None else mask_prefix
    torch.save({mp + k: v.clone() for k, v in mask.items()}, directory / mask_name)
    return directory / ckpt_name, directory / mask_name


def save_open_lth_level(net: nn.Module, mask: dict[str, Tensor], directory: Path, epoch: int = 0,
                        iteration: int = 0, prefix: str = "model.") -> Path:
    """Write an open_lth-style level folder: int mask, `model_ep{E}_it{I}.pth`, sparsity report."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({prefix + k: v.int() for k, v in mask.items()}, directory / "mask.pth")
    model_file = directory / f"model_ep{epoch}_it{iteration}.pth"
    torch.save(_prefixed(_masked_state(net, mask, True), prefix), model_file)
    total = sum(m.numel() for m in mask.values())
    unpruned = sum(float(m.sum()) for m in mask.values())
    (directory / "sparsity_report.json").write_text(json.dumps({"total": float(total), "unpruned": unpruned}, indent=4))
    return model_file


def save_prune_state_dict(net: nn.Module, mask: dict[str, Tensor], file: Path) -> Path:
    """Write the state dict torch.nn.utils.prune produces (weight_orig + weight_mask), made by prune itself."""
    from torch.nn.utils import prune

    pruned = copy.deepcopy(net)
    modules = dict(pruned.named_modules())
    for name, m in mask.items():
        module_name, _, param_name = name.rpartition(".")
        prune.custom_from_mask(modules[module_name], param_name, m.bool())
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(pruned.state_dict(), file)
    return file


def save_plain(net: nn.Module, mask: dict[str, Tensor], model_file: Path, mask_file: Path,
               apply_mask: bool = True) -> tuple[Path, Path]:
    """Write a plain state dict file and a name -> 0/1 mask file."""
    model_file, mask_file = Path(model_file), Path(mask_file)
    for f in (model_file, mask_file):
        f.parent.mkdir(parents=True, exist_ok=True)
    torch.save(_masked_state(net, mask, apply_mask), model_file)
    torch.save({k: v.clone() for k, v in mask.items()}, mask_file)
    return model_file, mask_file


# ---------------------------------------------------------------- measuring a loaded ticket

def measured_density_rlt(net: nn.Module) -> float:
    """RLT's convention measured on the weights: nonzero fraction of conv weights except the stem."""
    nonzero = total = 0
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d) and name != "conv1":
            nonzero += int(torch.count_nonzero(module.weight.detach()))
            total += module.weight.numel()
    return nonzero / total if total else 1.0


def ticket_densities(net: nn.Module, mask: dict[str, Tensor]) -> dict[str, float]:
    """Both conventions measured on the weights: overall (masked weights) and RLT (convs minus stem)."""
    total = sum(m.numel() for m in mask.values())
    params = dict(net.named_parameters())
    nonzero = sum(int(torch.count_nonzero(params[k].detach())) for k in mask)
    return {"density": nonzero / total if total else 1.0, "density_rlt": measured_density_rlt(net)}
