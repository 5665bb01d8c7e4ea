"""Random "ImageNet" weights where torchvision's loader looks for cached ones.

`write_random_imagenet_weights(arch, torch_home)` saves the state dict of a seeded,
randomly initialised torchvision model as

    <torch_home>/hub/checkpoints/<basename of the weights enum's URL>

e.g. resnet18-f37072fd.pth for ResNet18_Weights.IMAGENET1K_V1. With TORCH_HOME=torch_home
(or torch.hub.set_dir(torch_home/"hub")) both reprolib's loader
(reprolib.models.torchvision_resnets.torchvision_state_dict: looks for that file name in
`root`, then in torch.hub.get_dir()/checkpoints, and torch.load()s it) and torchvision's
`weights.get_state_dict()` / `torch.hub.load_state_dict_from_url(url)` find it offline.

Hash prefix: the "-f37072fd" in the name is the start of the real file's sha256.
torch.hub.load_state_dict_from_url (torch 2.x) checks it only while downloading:
`if not os.path.exists(cached_file): ... download_url_to_file(url, cached_file, hash_prefix)`;
an existing cached file is torch.load()ed without hashing, whatever check_hash says.
reprolib passes check_hash=True, but only on its download branch, which it reaches only
when the file is absent. So a random file under the real name loads everywhere without
network and without patching anything.

`write_sparse_checkpoint(arch, directory)` writes a stand-in for a published sparse
checkpoint (SPARSE_NAME): the same random weights, each Conv2d / Linear weight pruned by
magnitude to SPARSE_DENSITY per layer with exact zeros, saved as the PyTorch exports of
STR's "Dense" files and IST-DASLab's converted checkpoints are (a DataParallel "module."
prefix, nested under "state_dict", no mask file). The paper dry run imports it as a ticket.
"""

from __future__ import annotations

import os
from pathlib import Path

from reprolib.errors import ReprolibError, check_choice
from reprolib.models.registry import get_spec, names
from reprolib.records import atomic_torch_save

def arch_names() -> list[str]:
    """The registered backbones whose weights come from torchvision (the paper profile's)."""
    return [name for name in names() if not get_spec(name).trained_here]


def weights_enum(arch: str):
    """The torchvision weights enum member the registry names for `arch`."""
    from reprolib.models.torchvision_resnets import weights_enum as enum_of   # imports torchvision

    check_choice("dry-run arch", arch, arch_names())
    return enum_of(get_spec(arch).weights)


def checkpoint_path(arch: str, torch_home: str | os.PathLike) -> Path:
    """Where torch hub keeps `arch`'s weights when TORCH_HOME=torch_home."""
    return Path(torch_home).expanduser() / "hub" / "checkpoints" / os.path.basename(weights_enum(arch).url)


def random_state_dict(arch: str, seed: int = 0) -> dict:
    """State dict of torchvision `arch` (1000 classes) initialised under torch seed `seed`."""
    import torch

    check_choice("dry-run arch", arch, arch_names())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = get_spec(arch).build(1000)
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def write_random_imagenet_weights(arch: str, torch_home: str | os.PathLike | None = None, *,
                                  checkpoint_dir: str | os.PathLike | None = None, seed: int = 0) -> dict:
    """Write random weights for `arch` unless a file is already there.

    Target: checkpoint_path(arch, torch_home) (torch hub's cache for TORCH_HOME=torch_home),
    or, with checkpoint_dir= instead, checkpoint_dir/<file name> (a directory reprolib
    searches first, e.g. the `root` of get_backbone: the paper profile passes
    <data_root>/torch_hub). Returns {"arch", "path", "status": "written" | "exists", "bytes"}.
    An existing file is never overwritten (it may be the real checkpoint). The write is
    atomic (temp file + rename), so an interrupted run leaves no half file under the name.
    """
    if (torch_home is None) == (checkpoint_dir is None):
        raise ReprolibError("pass exactly one of torch_home= and checkpoint_dir=")
    if torch_home is not None:
        path = checkpoint_path(arch, torch_home)
    else:
        path = Path(checkpoint_dir).expanduser() / os.path.basename(weights_enum(arch).url)
    if path.is_file():
        return {"arch": arch, "path": str(path), "status": "exists", "bytes": path.stat().st_size}
    state = random_state_dict(arch, seed)
    atomic_torch_save(state, path)
    return {"arch": arch, "path": str(path), "status": "written", "bytes": path.stat().st_size}


SPARSE_DENSITY = 0.2                       # kept fraction per layer (80% sparse, like STR's first model)
SPARSE_DIR = "sparse_checkpoints"          # under the dry-run root


def sparse_name(arch: str) -> str:
    """The stand-in sparse checkpoint's file name for `arch`."""
    return f"{arch}-magnitude80-zeros.pth"


def write_sparse_checkpoint(arch: str, directory: str | os.PathLike, seed: int = 0) -> dict:
    """Write `arch`'s stand-in sparse checkpoint unless it exists; returns {"arch", "path", "status"}."""
    import torch

    path = Path(directory).expanduser() / sparse_name(arch)
    if path.is_file():
        return {"arch": arch, "path": str(path), "status": "exists"}
    state = random_state_dict(arch, seed)
    net = get_spec(arch).build(1000)
    prunable = [f"{name}.weight" for name, module in net.named_modules()
                if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear))]
    for key in prunable:
        weight = state[key]
        n_keep = max(1, round(SPARSE_DENSITY * weight.numel()))
        threshold = weight.abs().flatten().kthvalue(weight.numel() - n_keep + 1).values
        state[key] = torch.where(weight.abs() >= threshold, weight, torch.zeros_like(weight))
    atomic_torch_save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    return {"arch": arch, "path": str(path), "status": "written"}
