"""Load anyone's lottery ticket into a torchvision-style network, strictly and verifiably.

`load_ticket(path, arch, state=None, mask=None) -> (net, mask)` (docs/methods.md s.7) builds the
registry backbone `arch` (a `reprolib.models.names()` entry) and reads the formats of
`reprolib.sparsity.formats` into it, picked from what the path holds:

- a directory + `state=S`: RLT's `{arch}_dyn4_{S}_checkpoint.pth` + `{arch}_dyn4_{S}_mask.pth`,
  else a tickets root with `level_{S:02d}/` (ours) or `level_{S}/[main/]` (open_lth);
- a level folder: `mask.pth` + `model.pth` (ours, with `sparsity.json`) or open_lth's
  `model_ep{E}_it{I}.pth` (the latest-trained one when there are several: that is the ticket
  transfer uses) or any single other `.pth`; `sparsity.json` / `sparsity_report.json` is checked;
- a directory holding one RLT pair, or a single `.pth`, is read as that file / pair;
- a file: a torch.nn.utils.prune state dict (`weight_orig` * `weight_mask`), a state dict with
  open_lth `mask_*` buffers, or any state dict with `mask=<mask file>`;
- a file with `mask="zeros"` (IMPLICIT_MASK): a dense state dict whose pruned weights are exact
  zeros (STR, AC/DC, RigL and GMP exports, SparseZoo): the mask is derived as `weight != 0`
  over every Conv2d / Linear weight (stem and classifier included: published sparse networks
  may prune them), and the density is reported over those weights and in RLT's convention;
  a file that carries its own mask (prune / open_lth buffers) is read with that mask instead.
Keys in sparseml / SparseZoo naming (`input.conv`, `sections.X.Y`, `classifier.fc`) are
renamed to torchvision's first (`reprolib.sparsity.keymaps`); `LoadedTicket.key_naming` says so.

Why so strict. The public RLT loader matched checkpoint and mask keys with and without a
"model." prefix inconsistently, so the masked weights were overwritten by unmasked ones and
the "sparse" network ran dense (docs/methods.md s.7). Here each file's wrapper prefixes
("module.", "model.", "_orig_mod.") are stripped independently, keys must match the network
exactly (only `num_batches_tracked`, which old PyTorch did not save, may be missing), the
mask is multiplied into the weights explicitly, and the result is verified:

1. weights are exactly zero wherever the mask is 0: true by construction for finite weights,
   so non-finite weights are refused;
2. measured density (nonzero fraction of the masked weights) equals the mask's density,
   allowing DENSITY_TOL of the kept weights to be zero by chance; more zeros mean the
   checkpoint was pruned by a sparser mask than the one paired with it;
3. the checkpoint is either dense at the pruned positions (saved unmasked: prune's
   weight_orig, rewound weights) or zero at all of them, up to DENSITY_TOL; anything in
   between means it was masked by a different mask (files of different states);
4. a declared density (our sparsity.json, open_lth's sparsity_report.json) equals the mask's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from reprolib.errors import ReprolibError, check_choice
from reprolib.models import get_spec, names
from reprolib.sparsity import formats, keymaps, masks
from reprolib.sparsity.formats import names_preview
DENSITY_TOL = 1e-3   # fraction of weights allowed to sit on the "wrong" side by chance
IMPLICIT_MASK = "zeros"  # mask= value: derive the mask from the checkpoint's exact zeros
_OPEN_LTH_MODEL = re.compile(r"model_ep(\d+)_it(\d+)\.pth$")


@dataclass
class LoadedTicket:
    """A loaded ticket and what was measured while loading it."""

    net: nn.Module
    mask: dict[str, Tensor]
    arch: str
    format: str                 # rlt | open_lth | ours | prune | embedded | plain | zeros
    model_file: Path
    mask_file: Path | None      # None when the mask was embedded in model_file
    density: float              # mask's kept fraction over the masked (prunable) weights
    measured_density: float     # nonzero fraction of those weights in the loaded net
    density_rlt: float          # RLT convention: kept fraction of conv weights except the stem
    checkpoint_was_masked: bool
    key_naming: str | None = None   # "sparseml" when keys were renamed to torchvision's


@dataclass
class _Files:
    format: str
    model_file: Path
    mask_file: Path | None = None
    report_file: Path | None = None


def load_ticket(path: str | Path, arch: str, state: int | None = None,
                mask: str | Path | None = None) -> tuple[nn.Module, dict[str, Tensor]]:
    """(network with weight * mask applied, mask) from a ticket file or directory; see the module doc."""
    ticket = read_ticket(path, arch=arch, state=state, mask=mask)
    return ticket.net, ticket.mask


def read_ticket(path: str | Path, arch: str, state: int | None = None,
                mask: str | Path | None = None) -> LoadedTicket:
    """Like load_ticket, returning the files read and the measured densities too."""
    check_choice("arch", arch, names())
    if state is not None and (isinstance(state, bool) or not isinstance(state, int) or state < 0):
        raise ReprolibError(f"state must be an int >= 0, got {state!r}")
    implicit = isinstance(mask, str) and mask == IMPLICIT_MASK
    files = _locate_implicit(Path(path)) if implicit else _locate(Path(path), arch, state,
                                                                   None if mask is None else Path(mask))
    raw = formats.strip_prefixes(formats.read_checkpoint(files.model_file), files.model_file)
    raw, naming = keymaps.to_torchvision(keymaps.apply_str_thresholds(raw))
    weights, ticket_mask = formats.split_embedded_masks(raw, files.model_file)
    if implicit and not ticket_mask:   # a mask the file carries itself wins over its zeros
        net = _build_and_load(arch, weights, files.model_file)
        ticket = _apply_and_verify(net, _mask_from_zeros(net), weights, files, arch)
        ticket.key_naming = naming
        return ticket
    if files.mask_file is not None:
        file_mask = formats.read_mask(files.mask_file)
        for name in set(file_mask) & set(ticket_mask):
            if not torch.equal(file_mask[name], ticket_mask[name]):
                raise ReprolibError(f"mask {files.mask_file} disagrees with the mask stored in {files.model_file} at {name!r}")
        ticket_mask = {**ticket_mask, **file_mask}
    elif not ticket_mask:
        raise ReprolibError(f"{files.model_file} holds no mask (no weight_orig/weight_mask pairs, no mask_ buffers); "
                            f"pass mask=<mask file>")
    net = _build_and_load(arch, weights, files.model_file)
    _check_mask_keys(net, ticket_mask, files.mask_file or files.model_file, arch)
    ticket = _apply_and_verify(net, ticket_mask, weights, files, arch)
    ticket.key_naming = naming
    return ticket


def _locate_implicit(path: Path) -> _Files:
    """mask="zeros" reads one checkpoint file; the mask is in its zeros."""
    if not path.is_file():
        raise ReprolibError(f"mask={IMPLICIT_MASK!r} needs path to be one checkpoint file, got {path} "
                            f"({'a directory' if path.is_dir() else 'missing'})")
    return _Files(IMPLICIT_MASK, path)


def _mask_from_zeros(net: nn.Module) -> dict[str, Tensor]:
    """weight != 0 for every Conv2d / Linear weight of `net` (the implicit-mask convention)."""
    params = dict(net.named_parameters())
    with torch.no_grad():
        return {name: (params[name] != 0).to(torch.float32) for name in masks.prunable_names(net, exclude=())}


# ---------------------------------------------------------------- finding the files

def _locate(path: Path, arch: str, state: int | None, mask: Path | None) -> _Files:
    if not path.exists():
        raise ReprolibError(f"missing ticket path {path}: expected a checkpoint file or a ticket directory")
    if path.is_file():
        if mask is not None:
            return _Files("plain", path, mask)
        return _file_with_sibling_mask(path, arch)
    if mask is not None:
        raise ReprolibError(f"mask={mask} needs path to be the model file, got the directory {path}")
    if state is not None:
        return _locate_state(path, arch, state)
    if (path / "mask.pth").is_file():
        return _level_folder(path)
    pairs = sorted(path.glob(f"{arch}_dyn4_*_checkpoint.pth"))
    if len(pairs) == 1:
        return _locate_state(path, arch, int(pairs[0].name.split("_dyn4_")[1].split("_")[0]))
    if len(pairs) > 1:
        found = ", ".join(p.name.split("_dyn4_")[1].split("_")[0] for p in pairs)
        raise ReprolibError(f"{path} holds several RLT states ({found}); pass state=S")
    levels = sorted(p.name for p in path.glob("level_*") if p.is_dir())
    if levels:
        raise ReprolibError(f"{path} is a tickets root with {names_preview(levels)}; pass state=S")
    single = [p for p in path.glob("*.pth")]
    if len(single) == 1:
        return _file_with_sibling_mask(single[0], arch)
    ckpt, mask_name = formats.rlt_file_names(arch, "S")
    raise ReprolibError(
        f"no recognisable ticket format in {path}; looked for: RLT {ckpt} + {mask_name}, a level folder "
        f"(mask.pth + model.pth | model_ep*_it*.pth | one other .pth), a tickets root (level_XX/), "
        f"a single prune-format .pth"
    )


def _file_with_sibling_mask(file: Path, arch: str) -> _Files:
    """A model file alone: its RLT mask partner or a level folder's mask.pth, else an embedded mask."""
    match = re.match(rf"{re.escape(arch)}_dyn4_(\d+)_checkpoint\.pth$", file.name)
    if match:
        return _locate_state(file.parent, arch, int(match.group(1)))
    if file.name != "mask.pth" and (file.parent / "mask.pth").is_file():
        return _Files("ours" if file.name == "model.pth" else "open_lth", file, file.parent / "mask.pth",
                      _report(file.parent))
    return _Files("embedded", file)


def _locate_state(directory: Path, arch: str, state: int) -> _Files:
    ckpt_name, mask_name = formats.rlt_file_names(arch, state)
    ckpt, mask = directory / ckpt_name, directory / mask_name
    if ckpt.is_file() or mask.is_file():
        missing = [p.name for p in (ckpt, mask) if not p.is_file()]
        if missing:
            raise ReprolibError(f"missing file {directory / missing[0]}: the RLT format needs {ckpt_name} and {mask_name}")
        return _Files("rlt", ckpt, mask)
    for level in (f"level_{state:02d}", f"level_{state}", f"level_{state}/main"):
        if (directory / level / "mask.pth").is_file():
            return _level_folder(directory / level)
    other = sorted({p.name.split("_dyn4_")[0] for p in directory.glob("*_dyn4_*_checkpoint.pth")} - {arch})
    hint = f" (found RLT files for arch {', '.join(other)})" if other else ""
    raise ReprolibError(f"no ticket for state {state} in {directory}: expected {ckpt_name} + {mask_name}, "
                        f"or level_{state:02d}/mask.pth{hint}")


def _level_folder(directory: Path) -> _Files:
    mask = directory / "mask.pth"
    if (directory / "model.pth").is_file():
        return _Files("ours", directory / "model.pth", mask, _report(directory))
    candidates = [p for p in directory.glob("*.pth") if p.name != "mask.pth"]
    open_lth = [p for p in candidates if _OPEN_LTH_MODEL.match(p.name)]
    if open_lth and len(open_lth) == len(candidates):
        # open_lth keeps the rewind point (ep0_it0) and the trained model; transfer uses the trained one.
        latest = max(open_lth, key=lambda p: tuple(int(g) for g in _OPEN_LTH_MODEL.match(p.name).groups()))
        return _Files("open_lth", latest, mask, _report(directory))
    if len(candidates) == 1:
        return _Files("plain", candidates[0], mask, _report(directory))
    if not candidates:
        raise ReprolibError(f"missing model file in {directory}: expected model.pth, model_ep*_it*.pth or one other .pth next to mask.pth")
    raise ReprolibError(f"ambiguous level folder {directory}: several model files ({names_preview(p.name for p in candidates)}); "
                        f"pass path=<model file>, mask=<mask file>")


def _report(directory: Path) -> Path | None:
    for name in ("sparsity.json", "sparsity_report.json"):
        if (directory / name).is_file():
            return directory / name
    return None


# ---------------------------------------------------------------- building and loading

def build_network(arch: str, num_classes: int | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """A raw untrained network of registry backbone `arch` (default: its number of source classes)."""
    spec = get_spec(check_choice("arch", arch, names()))
    with torch.device(device):
        return spec.build(num_classes or spec.num_source_classes)


def _mismatches(net: nn.Module, weights: dict[str, Tensor]) -> tuple[list[str], list[str], list[str]]:
    expected = net.state_dict()
    missing = [k for k in expected if k not in weights and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in weights if k not in expected]
    shapes = [k for k in weights if k in expected and tuple(weights[k].shape) != tuple(expected[k].shape)]
    return missing, unexpected, shapes


def _guess_arch(arch: str, weights: dict[str, Tensor], num_classes: int | None) -> str:
    for other in names():
        if other != arch:
            net = build_network(other, num_classes, device="meta")  # meta: shapes only, no memory
            if not any(_mismatches(net, weights)):
                return f"; it looks like a {other} checkpoint"
    return ""


def _build_and_load(arch: str, weights: dict[str, Tensor], file: Path) -> nn.Module:
    head = weights.get(f"{get_spec(arch).classifier}.weight")
    num_classes = int(head.shape[0]) if head is not None and head.dim() == 2 else None  # the ticket's own head
    net = build_network(arch, num_classes, device="meta")  # parameters come from the file (assign=True)
    missing, unexpected, shapes = _mismatches(net, weights)
    if missing or unexpected:
        raise ReprolibError(
            f"{file} does not match arch {arch!r}: {len(missing)} missing keys ({names_preview(missing) or '-'}), "
            f"{len(unexpected)} unexpected keys ({names_preview(unexpected) or '-'}){_guess_arch(arch, weights, num_classes)}"
        )
    if shapes:
        key = shapes[0]
        expected = tuple(net.state_dict()[key].shape)
        raise ReprolibError(
            f"shape mismatch in {file} for {key!r}: checkpoint {tuple(weights[key].shape)} vs {arch} {expected}"
            f"{f' (+{len(shapes) - 1} more keys)' if len(shapes) > 1 else ''}{_guess_arch(arch, weights, num_classes)}"
        )
    reference = net.state_dict()
    state = {k: v.to(reference[k].dtype) if v.is_floating_point() else v for k, v in weights.items()}
    for key, value in reference.items():
        if key not in state:  # only num_batches_tracked can be absent (checked above)
            state[key] = torch.zeros(value.shape, dtype=value.dtype)
    net.load_state_dict(state, strict=True, assign=True)
    return net


def _check_mask_keys(net: nn.Module, mask: dict[str, Tensor], file: Path, arch: str) -> None:
    params = dict(net.named_parameters())
    unknown = [k for k in mask if k not in params]
    if unknown:
        raise ReprolibError(f"mask {file} has keys not among {arch}'s parameters: {names_preview(unknown)}")
    for name, m in mask.items():
        if tuple(m.shape) != tuple(params[name].shape):
            raise ReprolibError(f"shape mismatch in mask {file} for {name!r}: mask {tuple(m.shape)} vs {arch} {tuple(params[name].shape)}")


# ---------------------------------------------------------------- masking and verification

def _apply_and_verify(net: nn.Module, mask: dict[str, Tensor], raw: dict[str, Tensor], files: _Files,
                      arch: str) -> LoadedTicket:
    params = dict(net.named_parameters())
    file = files.model_file
    kept = total = kept_nonzero = raw_nonzero = 0
    # Counting passes only (no boolean indexing: resnet50 has 23M masked weights). For finite
    # weights w * m is exactly zero where m == 0, so nonzero counts after masking are the kept
    # positions' and the checkpoint's nonzeros at pruned positions are the difference.
    with torch.no_grad():
        for name, m in mask.items():
            w = params[name]
            raw_nonzero += int(torch.count_nonzero(raw[name]))  # before mul_: w shares raw's storage
            w.mul_(m)  # the explicit step the public loader's prefix bug lost
            if not bool(torch.isfinite(w.sum())):  # one reduction: any NaN / inf makes the sum non-finite
                raise ReprolibError(f"{file}: {name!r} holds non-finite weights, so they cannot be zero where the mask is 0")
            kept_nonzero += int(torch.count_nonzero(w))
            kept += int(m.sum())  # m is 0/1 (checked on reading)
            total += m.numel()
    _check_usable(net, file, kept, total)
    kept_zero = kept - kept_nonzero
    raw_pruned_nonzero = raw_nonzero - kept_nonzero
    density = kept / total if total else 1.0
    measured = kept_nonzero / total if total else 1.0
    if kept_zero > DENSITY_TOL * max(kept, 1):
        raise ReprolibError(f"{file}: measured density {measured:.4f} is below the mask's {density:.4f} "
                            f"({kept_zero} kept weights are zero); the checkpoint was pruned by another mask (a sparser state?)")
    pruned = total - kept
    fraction = raw_pruned_nonzero / pruned if pruned else 0.0
    if DENSITY_TOL < fraction < 1 - DENSITY_TOL:
        raise ReprolibError(f"{file} was masked by a different mask than {files.mask_file}: {fraction:.1%} of the weights "
                            f"this mask removes are nonzero in it (expect 0% or 100%); pair files of the same state")
    if files.report_file is not None:
        declared = formats.read_declared_density(files.report_file)
        if declared is not None and abs(declared - density) > 1e-6:
            raise ReprolibError(f"{files.report_file} declares density {declared:.6f} but the mask has {density:.6f}")
    return LoadedTicket(net=net, mask=mask, arch=arch, format=files.format, model_file=file, mask_file=files.mask_file,
                        density=density, measured_density=measured, density_rlt=masks.density_rlt(net, mask),
                        checkpoint_was_masked=pruned > 0 and fraction <= DENSITY_TOL)


def _check_usable(net: nn.Module, file: Path, kept: int, total: int) -> None:
    """Refuse a ticket that keeps no weight (its runs would sit at chance) or holds a NaN / inf
    anywhere (parameters and buffers: the runs would fail only after training)."""
    if total and kept == 0:
        raise ReprolibError(f"{file} keeps no weights (density 0: every prunable weight is zero or masked); "
                            "valid: a ticket with density above 0")
    with torch.no_grad():
        for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise ReprolibError(f"{file}: {name!r} holds non-finite values (NaN or inf); valid: finite weights")
