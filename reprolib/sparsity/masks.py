"""Masks: which weights a ticket keeps, how to prune them, and our on-disk layout.

A mask is `dict[str, Tensor]`: parameter name of `net` (e.g. `layer1.0.conv1.weight`) ->
0/1 float tensor of the weight's shape. Only prunable weights appear; a weight that is not
in the mask is dense. Layout: `<artifacts>/tickets/<kind>/level_XX/{model.pth, mask.pth,
sparsity.json}`; every file is written to a temporary name and moved into place with
os.replace, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reprolib import paths
from reprolib.errors import ReprolibError, check_choice
from reprolib.models.weights import load_weights
from reprolib.records import atomic_torch_save, atomic_write

Mask = dict[str, torch.Tensor]
MADE_KINDS = ("imp", "magnitude", "random")   # kinds `make_tickets` makes (level folders)
# Every kind a run's ticket may have: the made ones, and "imported" (a checkpoint made
# elsewhere, `tickets import`; its "level" is its place in the profile's tickets.imported).
KINDS = (*MADE_KINDS, "imported")
DEFAULT_EXCLUDE = ("conv1.weight", "fc.weight")
FILES_KEY = "files"   # sparsity.json: {file name: bytes} of the level's .pth files


def _weight_names(module_name: str, module: nn.Module) -> list[str]:
    prefix = f"{module_name}." if module_name else ""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        return [f"{prefix}weight"]
    # nn.MultiheadAttention keeps its q/k/v projection as a bare Parameter, not a Linear; its
    # out_proj is a Linear (found on its own). Pruned like every other linear map: leaving it
    # dense would keep a quarter of each ViT encoder block's weights out of the count.
    if isinstance(module, nn.MultiheadAttention) and module.in_proj_weight is not None:
        return [f"{prefix}in_proj_weight"]
    return []


def prunable_names(net: nn.Module, exclude: Iterable[str] = DEFAULT_EXCLUDE) -> list[str]:
    """Weight names of every Conv2d, Linear and attention in-projection in `net`, minus `exclude`, in module order."""
    exclude = set(exclude)
    names = [name for module_name, module in net.named_modules() for name in _weight_names(module_name, module)]
    return [name for name in names if name not in exclude]


def full_mask(net: nn.Module, exclude: Iterable[str] = DEFAULT_EXCLUDE) -> Mask:
    """The all-ones mask over the prunable weights of `net`."""
    params = dict(net.named_parameters())
    return {name: torch.ones_like(params[name], dtype=torch.float32) for name in prunable_names(net, exclude)}


@torch.no_grad()
def apply_mask(net: nn.Module, mask: Mask) -> None:
    """weight *= mask in place, so pruned weights are exactly zero."""
    params = dict(net.named_parameters())
    for name, keep in mask.items():
        if name not in params:
            raise ReprolibError(f"mask entry {name!r} is not a parameter of the network")
        params[name].mul_(keep.to(device=params[name].device, dtype=params[name].dtype))


def density(mask: Mask) -> tuple[float, dict[str, float]]:
    """(kept fraction over all masked weights, kept fraction per layer)."""
    kept = sum(float(m.sum()) for m in mask.values())
    total = sum(m.numel() for m in mask.values())
    per_layer = {name: float(m.sum()) / m.numel() for name, m in mask.items()}
    return (kept / total if total else 1.0), per_layer


def density_rlt(net: nn.Module, mask: Mask, stem: str = "conv1.weight", classifier: str = "fc.weight") -> float:
    """RLT's convention: kept fraction of all conv weights except the stem conv (no fc).

    A fraction in [0, 1]; RLT prints it as a percentage. Weights absent from the mask count
    as dense, so this is correct whichever layers the mask covers. A network whose only conv
    is its stem (a ViT: conv_proj) has no such body of convs; for it this reports the kept
    fraction of every prunable weight except `stem` and `classifier` (the encoder's linear
    maps and attention in-projections), which equals `density` under the default exclusions.
    """
    params = dict(net.named_parameters())
    body = [name for module_name, module in net.named_modules() if isinstance(module, nn.Conv2d)
            for name in _weight_names(module_name, module) if name != stem]
    if not body:
        body = prunable_names(net, exclude=(stem, classifier))
    kept = total = 0.0
    for name in body:
        total += params[name].numel()
        kept += float(mask[name].sum()) if name in mask else params[name].numel()
    return kept / total if total else 1.0


@torch.no_grad()
def global_magnitude_prune(net: nn.Module, mask: Mask, fraction: float) -> Mask:
    """A new mask with `fraction` of the REMAINING masked weights removed, globally by |w|.

    Scores are |w| of `net`'s current weights over all layers of `mask` at once. Exactly
    round(fraction * remaining) weights go; ties are broken by position (layer order of
    `mask`, then flat index; a stable sort), so the result is deterministic.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ReprolibError(f"prune fraction must be in [0, 1], got {fraction!r}")
    params = dict(net.named_parameters())
    names = list(mask)
    flat_scores = []
    for name in names:
        score = params[name].detach().abs().flatten().float().cpu()
        # already-pruned weights can never be chosen again (inf sorts last)
        flat_scores.append(torch.where(mask[name].flatten().cpu() > 0, score, torch.full_like(score, float("inf"))))
    scores = torch.cat(flat_scores)
    remaining = int(sum(float(m.sum()) for m in mask.values()))
    n_prune = int(round(fraction * remaining))
    keep = torch.cat([mask[name].flatten().cpu() for name in names]).clone()
    if n_prune:
        order = torch.sort(scores, stable=True).indices
        keep[order[:n_prune]] = 0.0
    out, start = {}, 0
    for name in names:
        n = mask[name].numel()
        out[name] = keep[start:start + n].view_as(mask[name]).to(mask[name].device)
        start += n
    return out


def random_prune_like(mask: Mask, seed: int) -> Mask:
    """A mask with the same number of kept weights per layer as `mask`, at seeded random positions."""
    generator = torch.Generator().manual_seed(int(seed))
    out = {}
    for name, keep in mask.items():
        n_keep = int(keep.sum())
        flat = torch.zeros(keep.numel())
        flat[torch.randperm(keep.numel(), generator=generator)[:n_keep]] = 1.0
        out[name] = flat.view_as(keep)
    return out


# ---- on-disk layout -------------------------------------------------------------------

def ticket_dir(artifacts: str | os.PathLike, kind: str, level: int, replicate: int = 1) -> Path:
    """`<artifacts>/tickets/<kind>/level_XX` (replicate >= 2: under `tickets/replicate_RR/`)."""
    check_choice("ticket kind", kind, MADE_KINDS)
    return paths.ticket_dir(artifacts, kind, level, replicate)


def is_complete(directory: Path) -> bool:
    """A level is complete when sparsity.json (always written last) reads and every file it lists
    is there at its recorded size (`save_report`); an incomplete one is named in one line, and
    the makers (`tickets`, import) make it again instead of reporting it `existing`."""
    report_file = Path(directory) / "sparsity.json"
    if not report_file.is_file():
        return False
    problem = missing_files(Path(directory))
    if problem:
        print(f"warning: ticket folder {directory} is incomplete ({problem}); `tickets` remakes it", file=sys.stderr)
    return problem is None


def missing_files(directory: Path) -> str | None:
    """What is wrong with a level's files, or None: sparsity.json unreadable, a listed file missing
    or of another size. Reports written before sizes were listed: no empty .pth, and a model.pth
    needs its mask.pth."""
    try:
        report = load_json(directory / "sparsity.json")
    except (OSError, ValueError):
        return "sparsity.json is not valid JSON"
    listed = report.get(FILES_KEY) if isinstance(report, dict) else None
    if not isinstance(listed, dict):
        if (directory / "model.pth").is_file() and not (directory / "mask.pth").is_file():
            return "mask.pth is missing"
        listed = {p.name: None for p in directory.glob("*.pth")}
    for name, size in sorted(listed.items()):
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        actual = path.stat().st_size
        if actual == 0 or (size is not None and actual != size):
            return f"{name} has {actual} bytes, {'not 0' if size is None else f'not {size}'}"
    return None


def save_report(directory: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Write a level's sparsity.json LAST (the commit marker), listing its .pth files and sizes
    under `files` so `is_complete` can tell a deleted or cut file; returns the report written."""
    directory = Path(directory)
    report = {**report, FILES_KEY: {p.name: p.stat().st_size for p in sorted(directory.glob("*.pth"))}}
    save_json(directory / "sparsity.json", report)
    return report


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> None:
    """torch.save a name -> tensor dict atomically (model.pth, mask.pth, rewind.pth)."""
    atomic_torch_save({k: v.detach().cpu() for k, v in tensors.items()}, path)


def load_tensors(path: str | os.PathLike, remedy: str = "remake it with `python -m reprolib tickets`"
                 ) -> dict[str, torch.Tensor]:
    """A tensor file of a ticket level (records.load_weights: a foreign or unsafe file is one line)."""
    return load_weights(path, remedy)


def save_json(path: str | os.PathLike, data: dict[str, Any]) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(data, indent=2, sort_keys=True) + "\n"), "w")


def load_json(path: str | os.PathLike) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)
